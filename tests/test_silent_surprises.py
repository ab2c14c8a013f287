"""What used to pass silently: fixed_prompt training a head, overlap between training and test
data, adapt with meaningless label names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import toy_csv
from tests.meta_toys import toy_tasks  # noqa: F401  (fixture)
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


def test_adapt_warnings_name_the_fix() -> None:
    from promptlearning.cli.adapt import adapt_warnings

    assert adapt_warnings(["negative", "positive"], False, None, False) == []
    (labels,) = adapt_warnings(["0", "1"], False, None, False)
    assert "--label-words" in labels and "0, 1" in labels
    assert adapt_warnings(["0", "1"], True, None, False) == []  # words given
    (description,) = adapt_warnings(["spam", "ham"], False, "description", True)
    assert "--description" in description


def test_adapt_warns_on_stderr(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                               capsys: pytest.CaptureFixture[str]) -> None:
    from promptlearning.cli.main import main
    from promptlearning.runs.multitask import run_multitask
    from tests.test_meta_core import _cfg

    run_multitask(_cfg(tmp_path), log=lambda *_: None)
    digits = tmp_path / "digits.csv"
    digits.write_text("text,label\n" + "".join(f"good great {i},1\nbad awful {i},0\n" for i in range(8)))
    argv = ["adapt", "--from", str(tmp_path / "run" / "best"), "--train-file", str(digits), "--shots", "2",
            "--steps", "1", "--max-test", "2", "--quiet"]
    capsys.readouterr()
    assert main(argv) == 0
    assert "warning: the labels 0, 1 carry no meaning" in capsys.readouterr().err
    assert main([*argv, "--label-words", "{0: [bad], 1: [good]}"]) == 0
    assert "carry no meaning" not in capsys.readouterr().err
