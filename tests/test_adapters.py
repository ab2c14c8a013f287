"""Adapter directories: refusals with clear messages, and nothing lost on a failed save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone, tiny_backbone
from promptlearning.errors import AdapterError
from promptlearning.model import PromptModel


def _saved(backbone: Backbone, path: Path) -> PromptModel:
    model = PromptModel.build(backbone, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    model.save_pretrained(path)
    return model


def test_missing_directory(bert: Backbone, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="does not exist"):
        PromptModel.from_pretrained(tmp_path / "nope", backbone=bert)


def test_corrupt_config(bert: Backbone, tmp_path: Path) -> None:
    _saved(bert, tmp_path)
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        PromptModel.from_pretrained(tmp_path, backbone=bert)


def test_corrupt_weights(bert: Backbone, tmp_path: Path) -> None:
    _saved(bert, tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterError, match="corrupt"):
        PromptModel.from_pretrained(tmp_path, backbone=bert)


def test_adapter_for_another_backbone(bert: Backbone, llama: Backbone, tmp_path: Path) -> None:
    _saved(bert, tmp_path)
    with pytest.raises(AdapterError, match="made for backbone 'tiny-bert'.*--backbone tiny-bert"):
        PromptModel.from_pretrained(tmp_path, backbone=llama)
    other = tiny_backbone("bert", hidden=48)
    with pytest.raises(AdapterError, match="hidden_size"):
        PromptModel.from_pretrained(tmp_path, backbone=other)


def test_same_shape_other_weights_is_refused(bert: Backbone, tmp_path: Path) -> None:
    import copy

    _saved(bert, tmp_path)
    other = copy.deepcopy(bert)
    with torch.no_grad():
        other.input_embeddings().weight.add_(1.0)
    with pytest.raises(AdapterError, match="weights"):
        PromptModel.from_pretrained(tmp_path, backbone=other)


def test_weights_that_do_not_fit_the_config(bert: Backbone, tmp_path: Path) -> None:
    _saved(bert, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    config["method_config"]["num_tokens"] = 3
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="shape"):
        PromptModel.from_pretrained(tmp_path, backbone=bert)


def test_failed_save_keeps_the_previous_adapter(bert: Backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _saved(bert, tmp_path / "a")
    before = (tmp_path / "a" / "adapter_model.safetensors").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("promptlearning.adapters.write_json", boom)
    with pytest.raises(OSError):
        model.save_pretrained(tmp_path / "a")
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == before
    assert PromptModel.from_pretrained(tmp_path / "a", backbone=bert).labels == ["neg", "pos"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_saved_files_are_json_and_safetensors(bert: Backbone, tmp_path: Path) -> None:
    _saved(bert, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["method"] == "prompt_tuning" and config["backbone"]["name"] == "tiny-bert"
    assert config["labels"] == ["neg", "pos"] and "version" in config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
