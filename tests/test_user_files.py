"""Tasks from the user's own CSV / TSV / JSON-lines files, and every refusal."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from promptlearning.data import Example, load_user_task
from promptlearning.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


def test_csv_with_test_file(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", 'text,label\n"good, really",pos\nbad,neg\n\nfine,pos\n')
    test = _write(tmp_path / "test.csv", "text,label\nmeh,neg\n")
    data = load_user_task(train, test)
    assert data.name == "train" and data.labels == ["neg", "pos"]
    assert data.pool == [Example("good, really", 1), Example("bad", 0), Example("fine", 1)]
    assert data.test == [Example("meh", 0)]
    assert "neg, pos" in data.description


def test_tsv_custom_columns_name_description(tmp_path: Path) -> None:
    train = _write(tmp_path / "d.tsv", "id\treview\tstars\n1\tgreat\t5\n2\tawful\t1\n3\tok\t10\n")
    data = load_user_task(
        train, train, text_column="review", label_column="stars", name="mine", description="Rate it.",
        allow_overlap=True,  # the same file on purpose
    )
    assert data.labels == ["1", "5", "10"]  # integers sort numerically
    assert [e.label for e in data.pool] == [1, 0, 2]
    assert (data.name, data.description) == ("mine", "Rate it.")


def test_jsonl_pairs_and_int_labels(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"premise": "a", "hypothesis": "b", "label": 1},
        {"premise": "c", "hypothesis": "d", "label": 0},
    ]
    train = _jsonl(tmp_path / "nli.jsonl", rows)
    data = load_user_task(train, train, text_column="premise", text_b_column="hypothesis", allow_overlap=True)
    assert data.labels == ["0", "1"]
    assert data.pool[0] == Example("a", 1, "b")


def test_json_lines_and_json_array(tmp_path: Path) -> None:
    rows = [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}]
    lines = _jsonl(tmp_path / "lines.json", rows)
    array = _write(tmp_path / "array.json", json.dumps(rows, indent=1))
    assert load_user_task(lines, lines, allow_overlap=True).pool == load_user_task(array, array, allow_overlap=True).pool


def test_given_labels_by_name_and_by_index(tmp_path: Path) -> None:
    named = _write(tmp_path / "n.csv", "text,label\nx,positive\n")
    data = load_user_task(named, named, labels=["negative", "positive"], allow_overlap=True)
    assert data.labels == ["negative", "positive"] and data.pool[0].label == 1
    indexed = _write(tmp_path / "i.csv", "text,label\nx,1\ny,0\n")
    assert [e.label for e in load_user_task(indexed, indexed, labels=["negative", "positive"], allow_overlap=True).pool] == [1, 0]


def test_no_test_file_splits_a_fixed_part(tmp_path: Path) -> None:
    body = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(50))
    train = _write(tmp_path / "t.csv", "text,label\n" + body)
    first, second = load_user_task(train), load_user_task(train)
    assert (len(first.pool), len(first.test)) == (40, 10)
    assert first.test == second.test and not set(first.pool) & set(first.test)


def _fails(match: str, *args: object, **kwargs: object) -> str:
    with pytest.raises(DataError, match=match) as err:
        load_user_task(*args, **kwargs)  # type: ignore[arg-type]
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    _fails("not found", tmp_path / "nope.csv")
    _fails("is empty", _write(tmp_path / "e.csv", ""))
    _fails("is empty", _write(tmp_path / "e.jsonl", "\n\n"))
    _fails("only a header", _write(tmp_path / "h.csv", "text,label\n"))
    _fails("name it .csv, .tsv or .jsonl", _write(tmp_path / "x.txt", "a"))


def test_malformed_rows_give_line_numbers(tmp_path: Path) -> None:
    _fails("line 3 has 3 fields but the header has 2", _write(tmp_path / "m.csv", "text,label\na,b\nc,d,e\n"))
    _fails("line 2 is not valid JSON", _write(tmp_path / "m.jsonl", '{"text": "a", "label": "x"}\n{"text": \n'))
    _fails("line 1 holds a list", _write(tmp_path / "l.jsonl", "[1, 2]\n"))
    _fails("line 2: column 'text' is empty", _write(tmp_path / "b.csv", "text,label\n ,x\n"))
    _fails("column 'text' holds 3", _jsonl(tmp_path / "n.jsonl", [{"text": 3, "label": "a"}]))


def test_missing_column_lists_columns_and_flag(tmp_path: Path) -> None:
    msg = _fails("no column 'text'", _write(tmp_path / "c.csv", "review,label\na,b\n"))
    assert "'review'" in msg and "--text-column" in msg
    msg = _fails("no column 'label'", _jsonl(tmp_path / "c.jsonl", [{"text": "a", "y": 1}]))
    assert "line 1" in msg and "'y'" in msg and "--label-column" in msg
    train = _write(tmp_path / "p.csv", "text,label\na,b\n")
    assert "--text-b-column" in _fails("no column 'pair'", train, text_b_column="pair")


def test_label_problems(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    test = _write(tmp_path / "test.csv", "text,label\nc,pos\nd,maybe\n")
    _fails("line 3 has label 'maybe', which never occurs in the training file", train, test)
    _fails("'neg', which is not among the given labels", train, train, labels=["pos", "other"])
    _fails("only one class", _write(tmp_path / "one.csv", "text,label\na,x\nb,x\n"))
    _fails("duplicates", train, train, labels=["pos", "pos"])
    _fails("pass at least 2 labels", train, train, labels=["pos"])
