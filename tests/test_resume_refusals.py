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
    (["--data-seed", "99"], "--data-seed 13 -> 99"),
    (["--max-length", "32"], "--max-length 64 -> 32"),
    (["--head-dropout", "0.3"], "--head-dropout 0.1 -> 0.3"),
    (["--backbone", "tiny-llama"], "--backbone tiny-bert -> tiny-llama"),
    (["--lr", "0.5"], "--lr "),
    (["--other-file"], "the data (task or file"),
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


def test_a_fresh_run_into_an_earlier_runs_folder_is_refused_and_keeps_it(finished: tuple[Path, Path],
                                                                          tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Forgetting --resume after a long killed run used to start afresh and overwrite its checkpoint and adapter."""
    data, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = _sha(copy)
    capsys.readouterr()
    assert main(["train", "--train-file", str(data), *BASE, "--lr", "0.5", "--output", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err and "\n" not in err
    assert _sha(copy) == before
    assert main(["train", "--train-file", str(data), *BASE, "--output", str(copy), "--resume", "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert _sha(copy) == before
    assert main(["train", "--train-file", str(data), *BASE, "--lr", "0.5", "--output", str(copy), "--overwrite"]) == 0
    assert _sha(copy) != before  # asked for: the earlier run is replaced
    fresh = tmp_path / "empty"
    fresh.mkdir()  # an existing but empty folder is free to use
    assert main(["train", "--train-file", str(data), *BASE, "--output", str(fresh)]) == 0


def test_resume_into_a_folder_that_does_not_exist_is_refused_at_once(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = toy_csv(tmp_path / "train.csv")
    capsys.readouterr()
    assert main(["train", "--train-file", str(data), *BASE, "--output", str(tmp_path / "never"), "--resume"]) == 2
    captured = capsys.readouterr()
    assert "does not exist, so it holds no checkpoint; drop --resume" in captured.err and captured.out == ""  # nothing loaded or trained first
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(("change", "named"), [
    (["--lr", "0.5"], "--lr "),
    (["--max-steps", "6"], "--max-steps 4 -> 6"),
    (["--method", "prompt_tuning"], "--method p_tuning_v2 -> prompt_tuning"),
])
def test_a_changed_flag_is_refused_before_the_backbone_loads(finished: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str], change: list[str],
                                                             named: str) -> None:
    """A 1.5B backbone takes minutes to load: a slip known from the command line is refused first."""
    import promptlearning.runs.single_task as single_task

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backbone was loaded before the refusal")

    monkeypatch.setattr(single_task, "shared_backbone", no_loading)
    data, run = finished
    run = Path(shutil.copytree(run, tmp_path / "run"))
    capsys.readouterr()
    code = main(["train", "--train-file", str(data), *BASE, *change, "--output", str(run), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "other settings" in err[0] and named in err[0], err[0]


@pytest.mark.parametrize("damage", ["no_state", "no_optimizer_tensors", "no_second_moments", "empty_optimizer_meta"])
def test_a_damaged_checkpoint_is_one_line_naming_overwrite(finished: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], damage: str) -> None:
    """A hand-edited or half-copied checkpoint used to end the resume in a KeyError traceback."""
    import json

    from safetensors.torch import load_file, save_file

    data, run = finished
    run = Path(shutil.copytree(run, tmp_path / "run"))
    meta_path, state_path = run / "checkpoint" / "trainer_state.json", run / "checkpoint" / "training_state.safetensors"
    meta = json.loads(meta_path.read_text())
    if damage == "no_state":
        meta_path.write_text(json.dumps({"step": 1}))
    elif damage == "empty_optimizer_meta":
        meta_path.write_text(json.dumps({**meta, "optimizer": {}}))
    else:
        dropped = "optim" if damage == "no_optimizer_tensors" else "exp_avg_sq"
        tensors = load_file(str(state_path))
        save_file({k: v for k, v in tensors.items() if dropped not in k}, str(state_path))
    before = _sha(run / "best")
    capsys.readouterr()
    code = main(["train", "--train-file", str(data), *BASE, "--output", str(run), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "damaged" in err[0] and "--overwrite in place of --resume" in err[0], err[0]
    assert _sha(run / "best") == before
