"""Adapter directories: a JSON config plus a safetensors file of the full trainable state.

The JSON names the method, so loading finds its class through the registry; it records the
backbone's identity (a weights fingerprint and shapes) and loading refuses any mismatch with
a message naming the right backbone. Nothing is pickled.

This module only reads and writes those files; assembling a model from them is
:meth:`promptlearning.model.PromptModel.from_pretrained`, one floor up, so methods that read
another adapter's tensors (prompt attention's sources) can use it without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from promptlearning.backbones import Backbone, weights_fingerprint
from promptlearning.errors import AdapterError
from promptlearning.fileio import atomic_directory, read_json, read_safetensors, recover_directory, write_json
from promptlearning.peft_files import SIDE_CONFIG_FILE, describe_foreign, is_peft_config, read_exported
from promptlearning.version import __version__

if TYPE_CHECKING:
    from promptlearning.model import PromptModel

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
FORMAT = 1
#: image_size too: the same CNN fed another size computes other features (absent on text backbones)
_SHAPE_KEYS = ("model_type", "num_layers", "hidden_size", "num_heads", "vocab_size", "image_size")


def adapter_config(model: PromptModel) -> dict[str, Any]:
    config: dict[str, Any] = {
        "format": FORMAT,
        "library": "promptlearning",
        "version": __version__,
        "method": type(model.method).name,
        "method_config": model.method.config.to_dict(),
        "head": model.head.config.to_dict(),
        "labels": model.labels,
        "task": model.task,
        "tasks": [t.to_dict() for t in model.tasks],
        "max_length": model.max_length,
        "template": model.template,
        "task_templates": model.task_templates,
        "backbone": model.backbone.info.to_dict(),
    }
    if getattr(model, "truncation", "head") != "head":  # saved only when set, so older configs stay as they were
        config["truncation"] = model.truncation
    dtype = backbone_dtype(model.backbone)
    if dtype != "float32":  # likewise: evaluate and predict load the backbone in this dtype unless told otherwise
        config["backbone"]["dtype"] = dtype
    return config


def backbone_dtype(backbone: Backbone) -> str:
    """The dtype name (float32, bfloat16, float16) the backbone's weights are held in."""
    return str(backbone.input_embeddings().weight.dtype).removeprefix("torch.")


def _same_weights(saved: dict[str, Any], backbone: Backbone) -> bool | None:
    """Whether the saved weights fingerprint matches the live backbone; None when it cannot be told.

    The fingerprint hashes embedding rows at the dtype they were held in. A live backbone in
    float32 can be rounded to the saved dtype (bfloat16 or float16) and compared exactly; a live
    backbone in a narrower dtype than the saved one cannot be widened back, so that is None."""
    weight = backbone.input_embeddings().weight
    saved_dtype = str(saved.get("dtype", "float32"))
    live = backbone_dtype(backbone)
    if saved_dtype == live:
        return saved.get("fingerprint") == weights_fingerprint(weight)
    if live == "float32" and saved_dtype in ("bfloat16", "float16"):
        return saved.get("fingerprint") == weights_fingerprint(weight.to(getattr(torch, saved_dtype)))
    return None


def save_tensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(path), metadata=metadata)


def save_adapter(model: PromptModel, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    config = adapter_config(model)
    if extra:
        config["extra"] = extra
    with atomic_directory(directory, marker_files=(CONFIG_FILE,)) as tmp:
        save_tensors(model.trainable_state(), tmp / WEIGHTS_FILE)
        write_json(tmp / CONFIG_FILE, config)
    return directory


def read_adapter_config(directory: Path) -> dict[str, Any]:
    recover_directory(directory)  # a save killed between its two renames left the previous adapter aside
    if directory.is_file():
        raise AdapterError(f"{directory} is a file; give the adapter's folder (the best/ folder that train --output "
                           "wrote, e.g. runs/mr/best)")
    if not directory.is_dir():
        raise AdapterError(f"adapter directory {directory} does not exist; give the folder that train --output wrote")
    if not (directory / CONFIG_FILE).is_file() and (directory / "best" / CONFIG_FILE).is_file():
        raise AdapterError(f"{directory} is a run directory; its adapter is {directory / 'best'}")
    if not (directory / CONFIG_FILE).exists():
        raise AdapterError(f"{directory} holds no {CONFIG_FILE}, so it is not an adapter; give the folder that "
                           "`promptlearning train --output` wrote (its best/) or a PEFT prompt/prefix adapter")
    config = read_json(directory / CONFIG_FILE,
                       lambda why: AdapterError(f"not a usable adapter: {why}; retrain or point to another adapter"))
    if is_peft_config(config):  # Hugging Face PEFT's: ours only if `promptlearning export` wrote it
        exported = read_exported(directory)
        if exported is None:
            raise AdapterError(describe_foreign(config, directory))
        return exported[0]
    if not isinstance(config, dict) or config.get("library") != "promptlearning" or "method" not in config:
        raise AdapterError(describe_foreign(config, directory))
    return config


def load_adapter_state(directory: Path) -> dict[str, torch.Tensor]:
    """The tensors of an adapter folder: ours, or those of a PEFT folder that `promptlearning export` wrote."""
    exported = read_exported(directory) if (directory / SIDE_CONFIG_FILE).is_file() else None
    return exported[1] if exported is not None else load_tensors(directory / WEIGHTS_FILE)


def check_backbone(config: dict[str, Any], backbone: Backbone, directory: Path) -> None:
    saved = config.get("backbone", {})
    have = backbone.info.to_dict()
    mismatched = [k for k in _SHAPE_KEYS if saved.get(k) != have.get(k)]
    # recomputed from the live weights: a modified copy of the same model is another backbone
    same = _same_weights(saved, backbone)
    if same is None and not mismatched:
        raise AdapterError(f"adapter {directory} was trained on {saved.get('name')!r} in {saved.get('dtype', 'float32')}, "
                           f"which cannot be checked against weights held in {backbone_dtype(backbone)}; "
                           f"load it with --dtype {saved.get('dtype', 'float32')}")
    if not same:
        mismatched.append("weights")
    if mismatched:
        raise AdapterError(
            f"adapter {directory} was made for backbone {saved.get('name')!r} but {have['name']!r} was given "
            f"(differs in {', '.join(mismatched)}); load it with --backbone {saved.get('name')}"
        )


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(path, "the adapter is incomplete, retrain or restore it", "retrain or restore the adapter")


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor], expected: set[str], where: Path) -> None:
    """Copy tensors in, refusing missing, unexpected or mis-shaped entries."""
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise AdapterError(f"{where} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                           "it is corrupt or from another version: retrain it")
    params: dict[str, torch.Tensor] = dict(model.named_parameters())
    params.update(dict(model.named_buffers()))
    with torch.no_grad():
        for name, tensor in state.items():
            target = params[name]
            if target.shape != tensor.shape:
                raise AdapterError(f"{where}: {name} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}; "
                                   "the adapter does not fit this configuration")
            target.copy_(tensor.to(target.dtype))
