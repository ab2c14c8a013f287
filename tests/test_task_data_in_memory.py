"""Tasks from Python objects (records, a pandas DataFrame, a datasets.Dataset) and the default
max_length that follows the backbone."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from promptlearning.backbones import Backbone
from promptlearning.data import TaskData, load_user_task
from promptlearning.errors import DataError
from promptlearning.model import PromptModel

PAIRS = [("good great", "pos"), ("bad awful", "neg")] * 6


def test_from_records_pairs_and_dicts() -> None:
    a = TaskData.from_records(PAIRS, PAIRS[:2], name="mine")
    b = TaskData.from_records([{"t": t, "y": y} for t, y in PAIRS], [{"t": "good", "y": "pos"}], text="t", label="y")
    assert a.labels == b.labels == ["neg", "pos"] and a.name == "mine"
    assert [e.text_a for e in a.pool] == [e.text_a for e in b.pool] and len(a.test) == 2
    assert TaskData.from_records([("x", 1), ("y", 10), ("z", 2)] * 4).labels == ["1", "2", "10"]


def test_from_records_refuses_bad_rows() -> None:
    with pytest.raises(DataError, match="record 2 has an empty"):
        TaskData.from_records([("good", "pos"), ("  ", "neg")])
    with pytest.raises(DataError, match="not among"):
        TaskData.from_records(PAIRS, [("good", "maybe")])
    with pytest.raises(DataError, match="no key 'label'"):
        TaskData.from_records([{"text": "a"}])


class _Frame:
    """Enough of a pandas DataFrame (pandas is not a dependency) to pass through from_pandas."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows, self.columns = rows, list(rows[0])

    def to_dict(self, orient: str) -> list[dict[str, Any]]:
        assert orient == "records"
        return self.rows


def test_from_pandas_and_the_file_loader_points_there() -> None:
    frame = _Frame([{"review": t, "stars": y} for t, y in PAIRS])
    data = TaskData.from_pandas(frame, text="review", label="stars")
    assert data.labels == ["neg", "pos"] and len(data.pool) + len(data.test) == len(PAIRS)
    with pytest.raises(DataError, match="from_pandas"):
        load_user_task(frame)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no column 'text'"):
        TaskData.from_pandas(frame)


def test_from_dataset_uses_classlabel_names() -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {"text": [t for t, _ in PAIRS], "label": [int(y == "pos") for _, y in PAIRS]},
        features=datasets.Features({"text": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["negative", "positive"])}))
    data = TaskData.from_dataset(ds)
    assert data.labels == ["negative", "positive"]
    assert {e.text_a: e.label for e in data.pool + data.test}["good great"] == 1


def test_max_length_follows_a_small_backbone(bert: Backbone) -> None:
    small = copy.deepcopy(bert)
    object.__setattr__(small, "info", type(bert.info)(**{**bert.info.to_dict(), "max_positions": 40}))
    model = PromptModel.build(small, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 5})
    assert model.max_length == 35  # 40 positions less 5 prompt vectors
    assert PromptModel.build(bert, "prompt_tuning", ["neg", "pos"]).max_length == min(128, bert.info.max_positions - 20)


class _ClassLabel:
    names = ["negative", "positive"]


class _Dataset:
    """Enough of a datasets.Dataset (not a dependency): features with a ClassLabel, rows as mappings."""

    features = {"text": object(), "label": _ClassLabel()}
    column_names = ["text", "label"]

    def __iter__(self) -> Any:
        return iter([{"text": t, "label": int(y == "pos")} for t, y in PAIRS])


def test_from_dataset_without_the_package() -> None:
    data = TaskData.from_dataset(_Dataset())
    assert data.labels == ["negative", "positive"]
    with pytest.raises(DataError, match="from_pandas"):
        TaskData.from_dataset([1, 2])


def test_predict_on_records(bert: Backbone) -> None:
    data = TaskData.from_records(PAIRS * 2)
    model = PromptModel.build(bert, "prompt_tuning", data.labels, method_options={"num_tokens": 2})
    assert model.predict([data.pool[0].text_a])[0] in data.labels
