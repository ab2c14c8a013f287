"""Prompt methods: the registry and every built-in method (each in its own module)."""

from __future__ import annotations

from .base import (
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
    """Import the built-in method modules so their decorators fill the registry."""
    from . import (  # noqa: F401
        baselines,
        deep_prompts,
        fixed_prompt,
        generators,
        hyperprompt,
        multitask_prompt,
        p_tuning,
        prefix_tuning,
        prompt_attention,
        prompt_tuning,
        spt,
    )


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
