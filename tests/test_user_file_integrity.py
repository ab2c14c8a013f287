"""User files that would silently corrupt a run are refused with one line naming the file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.data import load_user_task
from promptlearning.data.loading import DataConfig
from promptlearning.errors import ConfigError, DataError

GOOD = "text,label\ngreat film,pos\nawful film,neg\nlovely,pos\nboring,neg\n"


def _write(tmp_path: Path, text: str, name: str = "train.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_nan_label_is_refused_not_made_a_class(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 3: label 'NaN' marks a missing value"):
        load_user_task(_write(tmp_path, "text,label\ngreat film,pos\nfine,NaN\nawful film,neg\n"))


def test_an_unclosed_quote_that_swallows_rows_is_refused(tmp_path: Path) -> None:
    text = 'text,label\n"great film,pos\nawful film",neg\nlovely,pos\nboring,neg\n'
    with pytest.raises(DataError, match="unclosed quote"):
        load_user_task(_write(tmp_path, text))


def test_a_quote_left_open_to_the_end_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="malformed"):
        load_user_task(_write(tmp_path, GOOD + '"never closed,pos\n'))


def test_a_genuine_multi_line_text_is_kept(tmp_path: Path) -> None:
    task = load_user_task(_write(tmp_path, GOOD + '"Dear team,\nthe film was great",pos\n'), _write(
        tmp_path, GOOD, "test.csv"), allow_overlap=True)  # the test file repeats the training rows
    assert any("\n" in e.text_a for e in task.pool)


def test_a_duplicated_header_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'text' appears 2 times"):
        load_user_task(_write(tmp_path, "text,text,label\na,b,pos\nc,d,neg\n"))


@pytest.mark.parametrize(("field", "value"), [("max_test", 0), ("max_test", -5), ("dev_shots", 0), ("shots", 0)])
def test_non_positive_sizes_are_refused(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=field):
        DataConfig(**{field: value}).check()  # type: ignore[arg-type]
