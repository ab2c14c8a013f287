"""A bare path the command line did not expect is answered with the flag that takes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.cli.main import main
from tests.conftest import toy_csv


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hints")
    data = toy_csv(root / "train.csv")
    assert main(["train", "--train-file", str(data), "--backbone", "tiny-bert", "--max-steps", "2",
                 "--eval-every", "1", "--quiet", "--shots", "4", "--output", str(root / "run")]) == 0
    return root / "run" / "best"


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_a_bare_adapter_folder_names_the_adapter_flag(adapter: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    err = _refusal(["export", str(adapter), "--to", "peft", "--output", str(tmp_path / "x")], capsys)
    assert f"unrecognized arguments: {adapter} (an adapter folder is given as --adapter {adapter})" in err
    # the required-flag refusal comes first when --adapter is missing: it carries the hint too
    err = _refusal(["evaluate", str(adapter), "--task", "mr"], capsys)
    assert "required: --adapter" in err and f"--adapter {adapter}" in err


def test_a_bare_file_names_the_file_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = toy_csv(tmp_path / "mine.csv")
    err = _refusal(["train", str(data)], capsys)
    assert f"--train-file {data} or --test-file {data}" in err


def test_no_hint_for_a_word_that_is_no_path_or_does_not_fit(adapter: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert "(" not in _refusal(["tasks", "extra"], capsys)
    assert "(" not in _refusal(["train", str(tmp_path)], capsys)  # a folder holding no adapter
    assert "(" not in _refusal(["train", str(adapter)], capsys)  # train takes no adapter


def test_predict_says_when_a_text_is_also_a_file(adapter: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = toy_csv(tmp_path / "reviews.csv")
    assert main(["predict", "--adapter", str(adapter), str(data), "a fine film"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3  # the header and both texts: the note does not refuse
    assert f"{str(data)!r} was classified as a text" in err and f"--file {data}" in err
