"""The backbone's layer list is a view, not a second registration, so whole-model saving works."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from promptlearning.backbones import Backbone, tiny_backbone
from promptlearning.model import PromptModel


def _model(backbone: Backbone, method: str = "prompt_tuning") -> PromptModel:
    options = {"num_tokens": 3} if method == "prompt_tuning" else None
    return PromptModel.build(backbone, method, ["negative", "positive"], method_options=options)


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_every_state_dict_entry_has_its_own_storage(kind: str) -> None:
    state = _model(tiny_backbone(kind)).state_dict()
    owners: dict[int, list[str]] = {}
    for name, tensor in state.items():
        owners.setdefault(tensor.untyped_storage().data_ptr(), []).append(name)
    assert [names for names in owners.values() if len(names) > 1] == []


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_safetensors_saves_and_reloads_the_whole_model(kind: str, tmp_path: Path) -> None:
    model = _model(tiny_backbone(kind))
    save_model(model, str(tmp_path / "model.safetensors"))
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as fh:
        saved = set(fh.keys())
    assert saved == set(model.state_dict())  # nothing dropped as a duplicate of something else
    save_file(model.state_dict(), str(tmp_path / "plain.safetensors"))  # refuses tensors that share memory
    fresh = _model(tiny_backbone(kind))
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    missing, unexpected = load_model(fresh, str(tmp_path / "model.safetensors"))
    assert (missing, unexpected) == (set(), [])
    a, b = model.state_dict(), fresh.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_layers_are_the_model_s_own_blocks(kind: str) -> None:
    backbone = tiny_backbone(kind)
    assert len(backbone.layers) == backbone.info.num_layers == 2
    blocks = {id(m) for m in backbone.model.modules()}
    assert all(id(layer) in blocks for layer in backbone.layers)
    assert not any(name.startswith("layers.") for name, _ in backbone.named_parameters(remove_duplicate=False))


def test_copies_point_at_their_own_layers() -> None:
    import copy

    backbone = tiny_backbone("bert")
    twin = copy.deepcopy(backbone)
    assert twin.layers[0] is not backbone.layers[0]
    assert any(twin.layers[0] is m for m in twin.model.modules())


def test_full_fine_tuning_saves_backbone_weights_under_their_model_names() -> None:
    """Adapters written before the change named backbone weights ``backbone.model.*``; they still must."""
    model = _model(tiny_backbone("bert"), "finetune")
    backbone_keys = [k for k in model.trainable_state() if k.startswith("backbone.")]
    assert backbone_keys and all(k.startswith("backbone.model.") for k in backbone_keys)
