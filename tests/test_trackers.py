"""--report-to: the run's loss and dev scores reach an Accelerate tracker (TensorBoard here), and a
missing tracker package is a one-line error naming the extra to install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlearning.cli.main import main
from promptlearning.errors import ConfigError
from promptlearning.training import TrainConfig
from promptlearning.training import trackers as trackers_module

from .conftest import toy_csv

FAST = ["--backbone", "tiny-bert", "--max-steps", "6", "--eval-every", "3", "--quiet", "--shots", "4",
        "--no-baseline", "--train-past-perfect-dev"]


def test_tensorboard_gets_every_step_and_evaluation(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")  # in the dev extra; a trimmed install skips
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = toy_csv(tmp_path / "train.csv")
    out = tmp_path / "run"
    assert main(["train", "--train-file", str(data), *FAST, "--output", str(out), "--report-to", "tensorboard"]) == 0
    logs = out / "trackers" / "promptlearning"
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "dev/accuracy", "dev/macro_f1"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    written = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    dev = {r["step"]: r["dev_accuracy"] for r in written if "dev_accuracy" in r}
    assert {e.step: round(e.value, 6) for e in events.Scalars("dev/accuracy")} == {
        s: round(v, 6) for s, v in dev.items()}
    # where the run logs is not what it computes: the resume fingerprint and job keys ignore it
    assert "report_to" not in TrainConfig().to_dict()
    assert main(["train", "--train-file", str(data), *FAST, "--output", str(out), "--resume"]) == 0


def test_a_missing_tracker_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(trackers_module, "_available", lambda tracker: lambda: False)
    data = toy_csv(tmp_path / "train.csv")
    assert main(["train", "--train-file", str(data), *FAST, "--output", str(tmp_path / "run"),
                 "--report-to", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --report-to mlflow needs the mlflow package; install it with: pip install " \
                  "'promptlearning[mlflow]'\n"


def test_tensorboard_needs_an_output_directory() -> None:
    with pytest.raises(ConfigError, match="give --output DIR"):
        trackers_module.tracker_callback("tensorboard", None, TrainConfig())


def test_an_unknown_tracker_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown tracker 'neptune'"):
        TrainConfig(report_to="neptune")
