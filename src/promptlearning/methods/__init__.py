"""Prompt methods: the registry and every built-in method, one module per method named after it."""

from __future__ import annotations

from promptlearning.methods.base import (
    ENTRY_POINT_GROUP,
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
    """Import every module of this package, and every installed plugin, so ``@register_method`` fills the registry.

    A new built-in method is one new file here: no list of modules to keep up to date. A method
    outside the package is imported first by the user or declared as an entry point in the
    group ``promptlearning.methods`` (see :mod:`promptlearning.registry`).
    """
    from promptlearning.registry import import_submodules, load_entry_points

    import_submodules(__name__, skip=frozenset({"base", "protocols"}))
    load_entry_points(ENTRY_POINT_GROUP)


def list_methods() -> list[type[PromptMethod]]:
    _ensure_registered()
    return [METHODS[k] for k in sorted(METHODS)]


__all__ = [
    "ENTRY_POINT_GROUP",
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
