"""`--resume` refuses every changed setting that changes what the run computes, naming it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from promptlearning.cli.main import main
from tests.conftest import toy_csv

BASE = ["--backbone", "tiny-bert", "--max-steps", "4", "--eval-every", "2", "--quiet", "--shots", "4"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    data = toy_csv(root / "train.csv")
    assert main(["train", "--train-file", str(data), *BASE, "--output", str(root / "run")]) == 0
    return data, root / "run"


def _sha(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


@pytest.mark.parametrize(("change", "named"), [
    (["--data-seed", "99"], "data_digest"),
    (["--max-length", "32"], "model.max_length"),
    (["--head-dropout", "0.3"], "model.head.dropout"),
    (["--backbone", "tiny-llama"], "model.backbone"),
    (["--lr", "0.5"], "train.lr"),
    (["--other-file"], "data_digest"),
])
def test_a_changed_setting_is_refused_and_named(finished: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], change: list[str],
                                                named: str) -> None:
    data, run = finished
    run = Path(shutil.copytree(run, tmp_path / "run"))
    before = _sha(run / "best")
    if change == ["--other-file"]:
        data, change = toy_csv(tmp_path / "other.csv", seed=11), []
    capsys.readouterr()
    code = main(["train", "--train-file", str(data), *BASE, *change, "--output", str(run), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "other settings" in err[0] and named in err[0], err[0]
    assert _sha(run / "best") == before  # the refused resume touched nothing


def test_the_same_settings_resume(finished: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = finished
    run = Path(shutil.copytree(run, tmp_path / "run"))
    assert main(["train", "--train-file", str(data), *BASE, "--output", str(run), "--resume"]) == 0
