"""Prompt methods: the registry and every built-in method, one module per method named after it."""

from __future__ import annotations

from promptlearning.methods.base import (
    METHODS,
    MethodConfig,
    PromptContext,
    PromptMethod,
    build_method,
    get_method,
    make_config,
    register_method,
)


def _ensure_registered() -> None:
    """Import every module of this package so their ``@register_method`` decorators fill the registry.

    A new method is one new file here: no list of modules to keep up to date.
    """
    from promptlearning.registry import import_submodules

    import_submodules(__name__, skip=frozenset({"base"}))


def list_methods() -> list[type[PromptMethod]]:
    _ensure_registered()
    return [METHODS[k] for k in sorted(METHODS)]


__all__ = [
    "METHODS",
    "MethodConfig",
    "PromptContext",
    "PromptMethod",
    "build_method",
    "get_method",
    "list_methods",
    "make_config",
    "register_method",
]
