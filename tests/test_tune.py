"""`promptlearning tune`: declared search spaces, a resumable Optuna study, pruning on the dev curve, and a
best.yaml that `train --config` runs. Tiny BERT and a toy CSV: seconds per trial."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptlearning.cli.main import main
from promptlearning.methods import list_methods
from promptlearning.training import TrainConfig
from tests.test_bench import write_suite

optuna = pytest.importorskip("optuna", reason="the tune extra is not installed: pip install 'promptlearning[tune]'")

from promptlearning.bench.tuning.pruning import DevCurvePruning  # noqa: E402
from promptlearning.bench.tuning.space import defaults, method_space  # noqa: E402

TRAINED = [m.name for m in list_methods() if m.needs_training]


@pytest.mark.parametrize("method", TRAINED)
def test_every_method_declares_a_space_of_its_own_options(method: str) -> None:
    from promptlearning.methods import get_method

    cls = get_method(method)
    space = method_space(method)  # raises on a name that is no option
    assert "train.lr" in space
    options = {f.name: f.default for f in dataclasses.fields(cls.config_class)}
    train = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, value in defaults(method, space).items():  # the defaults are what the method runs with today
        expected = train[name[6:]] if name.startswith("train.") else options[name]
        assert value == (cls.default_lr if name == "train.lr" and expected is None and value is not None
                         else expected)


def _tune(tmp_path: Path, *extra: str) -> int:
    write_suite(tmp_path)  # writes toy.csv
    return main(["tune", "--method", "prefix_tuning", "--train-file", str(tmp_path / "toy.csv"), "--backbone",
                 "tiny-bert", "--shots", "4", "--max-steps", "4", "--eval-every", "2", "--output",
                 str(tmp_path / "study"), "--pruner", "none", *extra])


def _trials(tmp_path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(tmp_path / "study" / "study.sqlite3") as db:
        return [(n, s) for n, s in db.execute("SELECT number, state FROM trials ORDER BY number")]


def test_a_resumed_study_continues_its_trial_numbering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _tune(tmp_path, "--n-trials", "2") == 0
    assert _trials(tmp_path) == [(0, "COMPLETE"), (1, "COMPLETE")]
    first = yaml.safe_load((tmp_path / "study" / "best.yaml").read_text())
    calls = [0]
    real = DevCurvePruning.on_evaluate

    def killed_once(self: DevCurvePruning, trainer: Any, record: dict[str, Any]) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise KeyboardInterrupt  # Ctrl-C in the middle of trial 2
        real(self, trainer, record)

    monkeypatch.setattr(DevCurvePruning, "on_evaluate", killed_once)
    assert _tune(tmp_path, "--n-trials", "4") == 130
    assert _trials(tmp_path)[-1] == (2, "FAIL")
    assert _tune(tmp_path, "--n-trials", "4") == 0  # the same command resumes: two more finished trials
    assert _trials(tmp_path) == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "FAIL"), (3, "COMPLETE"), (4, "COMPLETE")]
    assert _tune(tmp_path, "--n-trials", "4") == 0  # nothing left to run
    assert len(_trials(tmp_path)) == 5
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'study' / 'study.sqlite3'}")
    drawn = [tuple(sorted(t.params.items())) for t in study.trials[1:]]
    assert len(set(drawn)) == len(drawn)  # a resumed study does not replay the random draws of the first run
    assert first["method"] == "prefix_tuning"


def test_the_written_yaml_trains_and_fixed_options_are_not_searched(tmp_path: Path) -> None:
    assert _tune(tmp_path, "--n-trials", "2", "--option", "num_tokens=3", "--seeds", "5,6", "--quiet") == 0
    best = tmp_path / "study" / "best.yaml"
    values = yaml.safe_load(best.read_text())
    assert "quiet" not in values["train"]  # how the study printed is not carried into the run it recommends
    assert values["method_options"]["num_tokens"] == 3 and values["train"]["seed"] == 5
    assert {"lr", "max_steps"} <= set(values["train"]) and "reparam" in values["method_options"]
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'study' / 'study.sqlite3'}")
    assert all("num_tokens" not in t.params and len(t.user_attrs["dev_accuracies"]) == 2 for t in study.trials)
    assert study.trials[0].user_attrs.get("defaults")  # the method's defaults are trial 0
    assert main(["train", "--config", str(best), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "best" / "adapter_config.json").read_text())  # JSON is YAML
    assert saved["method"] == "prefix_tuning"
    assert saved["method_config"]["reparam"] == values["method_options"]["reparam"]


def test_dev_curve_pruning_reports_each_evaluation_and_prunes() -> None:
    class Trial:
        def __init__(self, prune_at: int) -> None:
            self.reports: list[tuple[float, int]] = []
            self.prune_at = prune_at

        def report(self, value: float, step: int) -> None:
            self.reports.append((value, step))

        def should_prune(self) -> bool:
            return self.reports[-1][1] >= self.prune_at

    trial = Trial(prune_at=24)
    callback = DevCurvePruning(trial, offset=20)
    callback.on_evaluate(None, {"step": 2, "dev_accuracy": 0.5})
    with pytest.raises(optuna.TrialPruned):
        callback.on_evaluate(None, {"step": 4, "dev_accuracy": 0.25})
    assert trial.reports == [(0.5, 22), (0.25, 24)]


def test_dev_curve_pruning_asks_the_pruner_only_from_the_middle_of_each_run() -> None:
    class Trial:
        def __init__(self) -> None:
            self.reports: list[int] = []
            self.asked: list[int] = []

        def report(self, value: float, step: int) -> None:
            self.reports.append(step)

        def should_prune(self) -> bool:
            self.asked.append(self.reports[-1])
            return True

    trial = Trial()
    second_run = DevCurvePruning(trial, offset=10, warmup=5)  # the second run of a trial of 10-step runs
    second_run.on_evaluate(None, {"step": 2, "dev_accuracy": 0.1})
    second_run.on_evaluate(None, {"step": 4, "dev_accuracy": 0.1})
    with pytest.raises(optuna.TrialPruned):
        second_run.on_evaluate(None, {"step": 6, "dev_accuracy": 0.1})
    assert trial.reports == [12, 14, 16] and trial.asked == [16]


def test_tune_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tune(tmp_path, "--n-trials", "1") == 0
    assert _tune(tmp_path, "--n-trials", "2", "--max-steps", "6") == 2  # another setup in the same study
    assert _tune(tmp_path, "--workers", "2") == 2  # a Ray option without --executor ray
    assert _tune(tmp_path, "--n-trials", "0") == 2
    assert main(["tune", "--method", "fixed_prompt", "--output", str(tmp_path / "x")]) == 2
    assert main(["tune", "--method", "prompt_tuning", "--option", "num_tokens=abc", "--output", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 5
    assert "num_tokens must be an integer" in err and not (tmp_path / "y").exists()  # before any trial or study
    assert "another configuration" in err and "several `promptlearning tune`" in err


def test_three_failed_trials_in_a_row_stop_the_study_naming_the_error(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("optuna.study._optimize").addHandler(handler)  # Optuna's own stream is not captured here
    try:
        assert _tune(tmp_path, "--n-trials", "5", "--train-file", str(tmp_path / "missing.csv")) == 2
    finally:
        logging.getLogger("optuna.study._optimize").removeHandler(handler)
    assert [r.getMessage() for r in seen if r.levelno >= logging.WARNING] == []  # no "Trial 0 failed" + traceback
    assert _trials(tmp_path) == [(0, "FAIL"), (1, "FAIL"), (2, "FAIL")]
    captured = capsys.readouterr()
    assert "3 trials in a row failed (last: DataError: data file not found" in captured.err
    out = captured.out + captured.err
    assert "Traceback" not in out and "failed with" not in out  # Optuna's own warnings, with the trace, are quiet
    assert out.count("fail (DataError: data file not found") == 3  # each trial's line names its error


def test_tune_on_ray_without_the_ray_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does without the extra
    assert _tune(tmp_path, "--executor", "ray", "--n-trials", "1") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "pip install 'promptlearning[ray]'" in err
    assert not (tmp_path / "study").exists()  # refused before the study was made


def test_tune_refuses_an_ensemble_it_would_ignore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run.yaml").write_text("method: prompt_tuning\nensemble: 3\n")
    assert main(["tune", "--config", str(tmp_path / "run.yaml"), "--output", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "`ensemble` would be ignored" in err
    assert not (tmp_path / "study").exists()  # refused before any trial
