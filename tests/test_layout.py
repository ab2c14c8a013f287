"""The tree says where things go: one module per method and per head, named after what it registers."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import promptlearning.heads
import promptlearning.methods
from promptlearning.heads.base import HEADS, head_kinds
from promptlearning.methods import METHODS, list_methods

#: modules of the methods package that hold shared pieces, not a method
METHOD_HELPERS = {"base", "protocols", "prompt_init", "search_space"}
#: modules of the heads package that hold the interface and shared pieces, not a head
HEAD_HELPERS = {"base", "config", "pooling"}


def _modules(package: object) -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", sorted(set(_modules(promptlearning.methods)) - METHOD_HELPERS))
def test_each_method_module_registers_the_method_it_is_named_after(module: str) -> None:
    list_methods()
    mod = importlib.import_module(f"promptlearning.methods.{module}")
    registered = [name for name, cls in METHODS.items() if cls.__module__ == mod.__name__]
    assert registered == [module]


@pytest.mark.parametrize("module", sorted(set(_modules(promptlearning.heads)) - HEAD_HELPERS))
def test_each_head_module_registers_the_head_it_is_named_after(module: str) -> None:
    head_kinds()
    mod = importlib.import_module(f"promptlearning.heads.{module}")
    registered = [kind for kind, cls in HEADS.items() if cls.__module__ == mod.__name__]
    assert registered == [module]


def test_every_built_in_method_and_head_lives_in_its_own_module() -> None:
    """(Methods and heads registered by other code, e.g. a test's toy head, live where their authors put them.)"""
    methods = [cls for cls in list_methods() if cls.__module__.startswith("promptlearning.methods.")]
    assert sorted(cls.__module__.rsplit(".", 1)[1] for cls in methods) == sorted(cls.name for cls in methods)
    heads = [HEADS[k] for k in head_kinds() if HEADS[k].__module__.startswith("promptlearning.heads.")]
    assert sorted(cls.__module__.rsplit(".", 1)[1] for cls in heads) == sorted(cls.kind for cls in heads)
