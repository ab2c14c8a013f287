"""Moving adapters between promptlearning and Hugging Face PEFT (prompt tuning, prefix tuning).

- :func:`export_adapter`: one of our adapter folders -> a PEFT adapter folder (PEFT's config and
  ``prompt_embeddings``, plus our config and head beside them, which PEFT ignores).
- :func:`import_peft`: a plain PEFT prompt-tuning or prefix-tuning folder -> a :class:`PromptModel`.
  PEFT's folder has the prompt only: the labels and a head come from the caller (a verbaliser or
  label-description head works untrained; a classification head starts untrained).

A folder written by :func:`export_adapter` needs neither: ``PromptModel.from_pretrained`` reads
it directly. The file formats and why positions need care: :mod:`promptlearning.peft_files`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptlearning.adapters import load_tensors, read_adapter_config
from promptlearning.backbones import Backbone, load_backbone
from promptlearning.errors import AdapterError
from promptlearning.fileio import read_json
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.peft_files import (
    SIDE_CONFIG_FILE,
    WEIGHTS_FILE,
    check_shape,
    export,
    is_peft_config,
    peft_method,
    read_peft_config,
)


def export_adapter(adapter: str | Path, output: str | Path) -> Path:
    """Write our adapter ``adapter`` as a PEFT adapter in ``output`` (no backbone is loaded)."""
    adapter = Path(adapter)
    if (adapter / SIDE_CONFIG_FILE).is_file():
        raise AdapterError(f"{adapter} is already a PEFT adapter (written by promptlearning export); use it as it is")
    config = read_adapter_config(adapter)
    if "ensemble" in config:
        raise AdapterError(f"{adapter} is an ensemble of prompts and a PEFT adapter holds one; export one member's "
                           "adapter instead (RUN/members/<i>/best)")
    return export(config, load_tensors(adapter / WEIGHTS_FILE), adapter, Path(output))


def import_peft(directory: str | Path, labels: Sequence[str], *, backbone: Backbone | None = None,
                head: HeadConfig | None = None, max_length: int = 128, template: str | None = None,
                task: str | None = None) -> PromptModel:
    """A PromptModel whose prompt is a plain PEFT adapter's, with the given labels and head.

    ``backbone`` defaults to the model PEFT's config names (``base_model_name_or_path``)."""
    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise AdapterError(f"{directory} holds no adapter_config.json, so it is not a PEFT adapter; give the folder "
                           "that PEFT's save_pretrained wrote")
    raw = read_json(directory / "adapter_config.json", lambda why: AdapterError(f"not a usable adapter: {why}"))
    if not is_peft_config(raw):
        raise AdapterError(f"{directory} is a promptlearning adapter, not a PEFT one; load it as it is "
                           "(PromptModel.from_pretrained, or --adapter)")
    config = read_peft_config(directory)
    if backbone is None:
        named = config.get("base_model_name_or_path")
        if not named:
            raise AdapterError(f"PEFT adapter {directory} names no base model; give --backbone (from Python: "
                               "import_peft(dir, labels, backbone=...))")
        backbone = load_backbone(str(named))
    check_shape(config, backbone.info.to_dict(), directory)
    method, options, state = peft_method(config, directory)
    model = PromptModel.build(backbone, method, list(labels), method_options=options, head=head,
                              max_length=max_length, template=template, task=task)
    mine = model.method.state_dict()
    for key, tensor in state.items():
        mine[key.removeprefix("method.")].copy_(tensor.to(mine[key.removeprefix("method.")].dtype))
    return model
