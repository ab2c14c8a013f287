"""The prompt library: storage that round-trips exactly, nearest-task retrieval, and clear errors
for every damaged or mismatched library (with nothing stored ever deleted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import AdapterError, ConfigError, PromptLearningError
from promptlearning.model import PromptModel
from promptlearning.runs.prompt_library import ENTRIES_DIR, INDEX_FILE, REPR_FILE, PromptLibrary

LABELS = ["negative", "positive"]


def _model(backbone: Backbone, seed: int) -> PromptModel:
    model = PromptModel.build(backbone, "prompt_tuning", LABELS, method_options={"num_tokens": 3, "init_seed": seed},
                              task=f"t{seed}")
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def _library(tmp_path: Path, bert: Backbone) -> PromptLibrary:
    lib = PromptLibrary.open(tmp_path / "lib")
    axes = torch.eye(4)
    for i, name in enumerate(["movies", "phones", "tweets"]):
        lib.add(TaskInfo(name, LABELS, f"about {name}"), axes[i], _model(bert, i), "support", {"test_accuracy": 0.5 + i / 10})
    return lib


def test_nearest_returns_the_most_similar_stored_task(tmp_path: Path, bert: Backbone) -> None:
    lib = _library(tmp_path, bert)
    query = torch.tensor([0.1, 0.9, 0.3, 0.0])
    ranked = lib.nearest(query, k=3)
    assert [e.name for e, _ in ranked] == ["phones", "tweets", "movies"]
    assert ranked[0][1] == pytest.approx(0.9 / query.norm().item(), abs=1e-6)
    assert [e.name for e, _ in lib.nearest(query, k=1, exclude=["phones"])] == ["tweets"]


def test_retrieval_filters_by_representation_kind(tmp_path: Path, bert: Backbone) -> None:
    lib = _library(tmp_path, bert)
    with pytest.raises(ConfigError, match="'description'"):
        lib.nearest(torch.ones(4), repr_kind="description")
    with pytest.raises(ConfigError, match="size 5"):
        lib.nearest(torch.ones(5))


def test_save_and_load_round_trip_exactly(tmp_path: Path, bert: Backbone) -> None:
    lib = _library(tmp_path, bert)
    again = PromptLibrary.open(tmp_path / "lib", create=False)
    assert [e.name for e in again.entries] == ["movies", "phones", "tweets"]
    for a, b in zip(lib.entries, again.entries, strict=True):
        assert a.task == b.task and a.repr_kind == b.repr_kind and a.metrics == b.metrics and a.method == b.method
        assert torch.equal(a.representation, b.representation) and a.directory == b.directory
    original = _model(bert, 1)
    stored = again.load_model("phones", bert)
    assert all(torch.equal(original.trainable_state()[k], v) for k, v in stored.trainable_state().items())
    assert torch.equal(again.prompt_state("phones")["prompt"], original.method.prompt.detach())
    assert again.backbone is not None and again.backbone["name"] == "tiny-bert"


def test_adding_a_task_again_replaces_it_in_place(tmp_path: Path, bert: Backbone) -> None:
    lib = _library(tmp_path, bert)
    where = lib.get("phones").directory
    lib.add(TaskInfo("phones", LABELS, "new"), torch.tensor([0.0, 0.0, 0.0, 1.0]), _model(bert, 7), "support")
    again = PromptLibrary.open(tmp_path / "lib")
    assert len(again) == 3 and again.get("phones").directory == where
    assert again.get("phones").task.description == "new"
    assert torch.equal(again.prompt_state("phones")["prompt"], _model(bert, 7).method.prompt.detach())


def test_an_empty_library_has_nothing_to_retrieve(tmp_path: Path) -> None:
    lib = PromptLibrary.open(tmp_path / "empty")
    with pytest.raises(ConfigError, match="is empty"):
        lib.nearest(torch.ones(4))
    with pytest.raises(ConfigError, match="not in the prompt library"):
        lib.get("mr")
    with pytest.raises(ConfigError, match="not a prompt library"):
        PromptLibrary.open(tmp_path / "empty", create=False)


@pytest.mark.parametrize("damage", ["garbage_index", "wrong_kind", "missing_index", "garbage_repr", "missing_repr",
                                    "malformed_entry", "future_format"])
def test_a_damaged_library_is_a_clear_error_and_loses_nothing(tmp_path: Path, bert: Backbone, damage: str) -> None:
    _library(tmp_path, bert)
    root = tmp_path / "lib"
    index = root / INDEX_FILE
    first = sorted((root / ENTRIES_DIR).iterdir())[0]
    data = json.loads(index.read_text())
    if damage == "garbage_index":
        index.write_text("{not json")
    elif damage == "wrong_kind":
        index.write_text(json.dumps({"entries": []}))
    elif damage == "missing_index":
        index.unlink()
    elif damage == "garbage_repr":
        (first / REPR_FILE).write_bytes(b"\x00garbage")
    elif damage == "missing_repr":
        (first / REPR_FILE).unlink()
    elif damage == "malformed_entry":
        data["entries"][0] = {"dir": 3}
        index.write_text(json.dumps(data))
    else:
        data["format"] = 99
        index.write_text(json.dumps(data))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(AdapterError) as info:
        PromptLibrary.open(root)
    message = str(info.value)
    assert "\n" not in message and "restore it" in message
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing removed or added


def test_a_library_refuses_prompts_from_another_backbone(tmp_path: Path, bert: Backbone, llama: Backbone) -> None:
    lib = _library(tmp_path, bert)
    with pytest.raises(AdapterError, match="--backbone tiny-bert"):
        lib.add(TaskInfo("x", LABELS), torch.ones(4), _model(llama, 0), "support")
    with pytest.raises(AdapterError):
        PromptLibrary.open(tmp_path / "lib").check_backbone(llama)
    assert len(PromptLibrary.open(tmp_path / "lib")) == 3


def test_a_failed_add_keeps_the_previous_library(tmp_path: Path, bert: Backbone,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lib = _library(tmp_path, bert)
    index_before = (tmp_path / "lib" / INDEX_FILE).read_text()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(PromptModel, "save_pretrained", boom)
    with pytest.raises(OSError):
        lib.add(TaskInfo("phones", LABELS), torch.ones(4), _model(bert, 9), "support")
    monkeypatch.undo()
    assert (tmp_path / "lib" / INDEX_FILE).read_text() == index_before
    again = PromptLibrary.open(tmp_path / "lib")
    assert torch.equal(again.prompt_state("phones")["prompt"], _model(bert, 1).method.prompt.detach())
    assert issubclass(AdapterError, PromptLearningError)
