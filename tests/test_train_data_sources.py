"""`train` refuses data options it would ignore, and says what it did that nobody asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.cli.main import main
from tests.conftest import toy_csv
from tests.test_cli import FAST, fails


@pytest.mark.parametrize(("extra", "named"), [
    (["--tasks", "mr,cr", "--train-file", "{csv}"], "reads no --train-file"),
    (["--tasks", "mr,cr", "--task", "mr"], "reads no --task"),
    (["--tasks", "mr,cr", "--text-column", "foo", "--label-column", "bar"], "reads no --text-column, --label-column"),
    (["--task", "mr", "--test-file", "{csv}"], "is scored on its own test split, not on --test-file"),
])
def test_ignored_data_options_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          extra: list[str], named: str) -> None:
    """Each used to train and score on the registered tasks alone, with exit 0."""
    csv = str(toy_csv(tmp_path / "mine.csv"))
    err = fails(capsys, "train", *FAST, *[csv if x == "{csv}" else x for x in extra], "--output", str(tmp_path / "r"))
    assert named in err
    assert not (tmp_path / "r").exists()


def test_a_run_without_task_or_output_says_so_last(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["train", *FAST]) == 0
    notes = capsys.readouterr().err.strip().splitlines()[-2:]
    assert "trained on mr, the default task" in notes[0]
    assert "the adapter was not saved; add --output RUN_DIR" in notes[1]


def test_a_run_with_task_and_output_adds_no_note(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capsys.readouterr()
    assert main(["train", *FAST, "--task", "mr", "--output", str(tmp_path / "r")]) == 0
    assert "note:" not in capsys.readouterr().err
