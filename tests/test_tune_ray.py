"""`promptlearning tune --executor ray` on a local Ray cluster (``ray.init(num_cpus=2)``): the trials run as Ray
tasks while this process alone writes the study; pruning still reaches Optuna's pruner; a stale running trial is
failed and its values run again. Tiny BERT and a toy CSV, as tests/test_tune.py.

Skipped, with the reason, when the ``ray`` or ``tune`` extra is not installed.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptlearning.cli.main import main
from tests.test_bench import write_suite

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'promptlearning[ray]'")
optuna = pytest.importorskip("optuna", reason="the tune extra is not installed: pip install 'promptlearning[tune]'")

from promptlearning.bench.tuning import study as study_module  # noqa: E402
from promptlearning.bench.tuning.space import defaults, method_space, suggest  # noqa: E402


def _tune(tmp_path: Path, *extra: str) -> int:
    write_suite(tmp_path)  # writes toy.csv
    return main(["tune", "--method", "prefix_tuning", "--train-file", str(tmp_path / "toy.csv"), "--backbone",
                 "tiny-bert", "--shots", "4", "--max-steps", "4", "--eval-every", "2", "--output",
                 str(tmp_path / "study"), *extra])


def _study(tmp_path: Path) -> Any:
    return optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'study' / 'study.sqlite3'}")


def _states(tmp_path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(tmp_path / "study" / "study.sqlite3") as db:
        return [(n, s) for n, s in db.execute("SELECT number, state FROM trials ORDER BY number")]


def test_a_study_on_ray_runs_its_trials_in_tasks_and_writes_a_best_yaml_that_trains(
        tmp_path: Path, cluster: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with monkeypatch.context() as m:
        def not_here(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the driver trained a trial itself")

        m.setattr("promptlearning.runs.single_task.run_experiment", not_here)  # the tasks import their own
        assert _tune(tmp_path, "--executor", "ray", "--workers", "2", "--n-trials", "3", "--pruner", "none") == 0
    out = capsys.readouterr().out
    assert "up to 2 trial(s) at once" in out
    assert _states(tmp_path) == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    study = _study(tmp_path)
    first = study.trials[0]
    assert first.user_attrs.get("defaults") and first.params == defaults("prefix_tuning", method_space("prefix_tuning"))
    for trial in study.trials:  # each task's dev curve and scores came back into the study
        assert set(trial.intermediate_values) == {2, 4}
        assert trial.value == trial.user_attrs["dev_accuracies"][0]
        assert f"trial {trial.number}: dev {trial.value:.4f}  " in out  # the local path's progress line
    summary = yaml.safe_load((tmp_path / "study" / "summary.json").read_text())  # JSON is YAML
    assert summary["trials"] == {"complete": 3} and summary["default_value"] == first.value
    best = tmp_path / "study" / "best.yaml"
    values = yaml.safe_load(best.read_text())
    assert values["method"] == "prefix_tuning"
    assert values["train"]["lr"] == study.trials[summary["best_trial"]].params["train.lr"]
    assert main(["train", "--config", str(best), "--output", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "best" / "adapter_config.json").is_file()


class PruneTrialOne(optuna.pruners.BasePruner):
    """Prunes trial 1 at its first report and no other: a pruning the test can count on."""

    def prune(self, study: Any, trial: Any) -> bool:
        return bool(trial.number == 1)


def test_pruning_on_the_dev_curve_reaches_optunas_pruner_from_a_ray_task(
        tmp_path: Path, cluster: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(study_module, "make_pruner", lambda optuna, cfg: PruneTrialOne())
    assert _tune(tmp_path, "--executor", "ray", "--workers", "2", "--n-trials", "3", "--seeds", "5,6") == 0
    assert _states(tmp_path) == [(0, "COMPLETE"), (1, "PRUNED"), (2, "COMPLETE")]
    trials = _study(tmp_path).trials
    pruned = trials[1]
    assert list(pruned.intermediate_values) == [2] and pruned.value == pruned.intermediate_values[2]
    for trial in (trials[0], trials[2]):  # the second seed's run reports after the first's: run x max_steps + step
        assert set(trial.intermediate_values) == {2, 4, 6, 8} and len(trial.user_attrs["dev_accuracies"]) == 2
    assert f"trial 1: dev {pruned.value:.4f} (pruned at step 2)  " in capsys.readouterr().out


def test_a_stale_running_trial_is_failed_and_its_values_run_again_on_ray(
        tmp_path: Path, cluster: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(study_module, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(study_module, "GRACE_SECONDS", 1)
    assert _tune(tmp_path, "--n-trials", "1", "--pruner", "none") == 0  # a study with one trial, run locally
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are experimental, and meant for optimize() (here: a killed driver)
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study' / 'study.sqlite3'}", heartbeat_interval=1)
        stale = optuna.load_study(study_name="tune", storage=storage).ask()
    params = suggest(stale, method_space("prefix_tuning"))
    storage.record_heartbeat(stale._trial_id)  # it beat once, then its driver was killed: never told
    time.sleep(2.5)  # older than the grace period
    assert _states(tmp_path) == [(0, "COMPLETE"), (1, "RUNNING")]
    assert _tune(tmp_path, "--executor", "ray", "--workers", "2", "--n-trials", "3", "--pruner", "none") == 0
    assert _states(tmp_path) == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE"), (3, "COMPLETE")]
    trials = _study(tmp_path).trials
    assert trials[2].params == params and trials[2].system_attrs["failed_trial"] == 1  # its values, once more
    assert trials[3].params != params


def test_failed_trials_on_ray_stop_the_study_as_locally(tmp_path: Path, cluster: None,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.csv")  # the trials' tasks raise a DataError: failed trials, not lost ones
    assert _tune(tmp_path, "--executor", "ray", "--workers", "2", "--n-trials", "5", "--train-file", missing) == 2
    states = _states(tmp_path)
    assert len(states) >= 3 and {s for _, s in states} == {"FAIL"}  # 3 in a row stop it (a 4th may be in flight)
    assert "3 trials in a row failed (last: DataError: data file not found" in capsys.readouterr().err
    assert all(t.user_attrs["fail_reason"].startswith("DataError: ") for t in _study(tmp_path).trials)


def test_a_trial_whose_worker_dies_runs_again_once(tmp_path: Path, cluster: None, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from promptlearning.bench.tuning import on_ray

    doomed = tmp_path / "doomed.json"

    def die_on_trial_1s_values(cfg: Any, params: dict[str, Any], trial: Any, threads: int) -> Any:
        import json
        import os

        from promptlearning.bench.tuning.on_ray import train_trial_in_worker  # the worker's own, unpatched

        if trial.number == 1 and not doomed.exists():
            doomed.write_text(json.dumps(params))
        if doomed.exists() and json.loads(doomed.read_text()) == params:
            os._exit(1)  # the worker process dies mid-trial, as a killed or out-of-memory one does
        return train_trial_in_worker(cfg, params, trial, threads)

    monkeypatch.setattr(on_ray, "train_trial_in_worker", die_on_trial_1s_values)
    assert _tune(tmp_path, "--executor", "ray", "--workers", "2", "--n-trials", "3", "--pruner", "none") == 0
    trials = _study(tmp_path).trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed][:1] == [1] and len(failed) == 2  # trial 1, and its one retry (died too)
    assert failed[1].params == failed[0].params and failed[1].system_attrs["failed_trial"] == 1
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3 and len(trials) == 5  # not a third time
    out = capsys.readouterr().out
    assert "trial 1: fail (worker lost: " in out and "its values run again)" in out and "not run again)" in out
