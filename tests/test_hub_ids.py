"""Hub ids load from the local Hugging Face cache only, with or without an organisation; a missing one fails at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.backbones import load_backbone
from promptlearning.errors import BackboneError, UnknownNameError
from promptlearning.tiny import tiny_parts


def _cache_model(hub: Path, repo_id: str) -> None:
    """Lay a tiny model out as `hf download` leaves it in the hub cache."""
    folder = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef"
    model, tokenizer, _ = tiny_parts("bert")
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123456789abcdef")


def _use_hub_cache(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Point the Hugging Face cache at ``folder`` (huggingface_hub reads its constant at each call)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))


@pytest.mark.parametrize("repo_id", ["tiny-model", "someorg/tiny-model"])
def test_a_cached_hub_model_loads_with_or_without_an_organisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  repo_id: str) -> None:
    _use_hub_cache(monkeypatch, tmp_path / "hub")
    _cache_model(tmp_path / "hub", repo_id)
    backbone = load_backbone(repo_id)
    assert backbone.info.name == repo_id and backbone.info.num_layers == 2


def test_a_hub_id_not_in_the_cache_fails_at_once_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_hub_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(BackboneError, match=r"never downloaded at run time.*hf download distilbert-base-uncased"):
        load_backbone("distilbert-base-uncased")


@pytest.mark.parametrize("typo, meant", [("minilm-l7", "minilm-l6"), ("mpnet-bse", "mpnet-base")])
def test_a_misspelt_packaged_backbone_gets_the_likely_name(typo: str, meant: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _use_hub_cache(monkeypatch, tmp_path / "empty")
    with pytest.raises(BackboneError, match=f"did you mean {meant}\\?") as info:
        load_backbone(typo)
    assert "hf download" not in str(info.value)


def test_a_path_like_name_is_not_a_hub_id() -> None:
    with pytest.raises(UnknownNameError, match="unknown backbone"):
        load_backbone("../not/a/model")
