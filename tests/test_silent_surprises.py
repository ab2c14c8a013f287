"""What used to pass silently: fixed_prompt training a head, overlap between training and test
data, adapt with meaningless label names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import toy_csv
from tests.test_cli import FAST, fails, ok


def test_fixed_prompt_with_a_head_that_needs_training_is_refused(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    train = toy_csv(tmp_path / "train.csv")
    msg = fails(capsys, "train", "--train-file", str(train), *FAST, "--method", "fixed_prompt")
    assert "--head label_description" in msg and "--head verbalizer" in msg


def test_fixed_prompt_with_label_description_trains_nothing(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    train = toy_csv(tmp_path / "train.csv")
    ok(capsys, "train", "--train-file", str(train), *FAST, "--method", "fixed_prompt", "--head",
       "label_description", "--output", str(tmp_path / "run"))
    results = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert results["steps"] == 0 and results["trainable_params"] == 0


def _overlapping(tmp_path: Path) -> tuple[Path, Path]:
    train = toy_csv(tmp_path / "train.csv", n_per_class=12, seed=5)
    lines = train.read_text().splitlines()
    test = tmp_path / "test.csv"
    # two rows copied from the training file (one in other case and spacing) and one new row
    first, (text, label) = lines[1], lines[2].rsplit(",", 1)
    shouted = "  " + text.upper().replace(" ", "  ", 1) + "," + label
    test.write_text("\n".join([lines[0], first, shouted, "zzz qqq,pos"]) + "\n")
    return train, test


def test_overlap_between_training_and_test_file_is_refused(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    train, test = _overlapping(tmp_path)
    msg = fails(capsys, "train", "--train-file", str(train), "--test-file", str(test), *FAST)
    assert msg.startswith("error: 2 of 3 examples") and "--allow-overlap" in msg


def test_overlap_allowed_when_asked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from promptlearning.data.user_files import load_user_task

    train, test = _overlapping(tmp_path)
    data = load_user_task(train, test, allow_overlap=True)
    assert len(data.test) == 3
    ok(capsys, "train", "--train-file", str(train), "--test-file", str(test), *FAST, "--allow-overlap")
