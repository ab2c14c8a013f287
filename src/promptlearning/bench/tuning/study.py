"""The tuning study: Optuna's sampler and pruner over a method's search space, stored in an RDB.

Why an RDB (SQLite by default, beside the outputs): a killed study resumes by running the
same command, its trials keep their numbers, and several ``tune`` processes (or machines, with
a server database) can share one study. ``n_trials`` is the number of finished trials
(complete or pruned) the study should hold, so a re-run only adds the missing ones.

Where the trials run is a :data:`TrialRunner`: :func:`run_here` (Optuna's ``optimize`` in this
process) unless the caller passes another (``bench.tuning.on_ray``: Ray tasks, this process
alone writing the study). Both train a trial through :func:`run_trial` and report each finished
trial through :class:`Progress`, so they log, stop and fail alike.

A trial's score is its mean dev accuracy (best-on-dev checkpoint) over the tasks and seeds
asked for, each seed seeding both the few-shot split and training, as the bench does. The
method's defaults are the study's first trial, so every study also measures them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlearning.bench.runner import one_line
from promptlearning.bench.tuning.pruning import DevCurvePruning
from promptlearning.bench.tuning.space import apply, defaults, describe, free_space, suggest, where
from promptlearning.errors import ConfigError, PromptLearningError

Log = Callable[[str], None]
#: trials are scored on dev; the run's test evaluation (not used) is cut to this many examples
TRIAL_MAX_TEST = 8
#: consecutive failed trials after which the study stops (a setting that cannot run at all)
MAX_FAILURES_IN_A_ROW = 3
STUDY_FILE = "study.sqlite3"
#: a running trial's heartbeat is written this often; one older than the grace is a dead process's trial,
#: failed and its values run again (at most MAX_RETRIES times)
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
MAX_RETRIES = 1
#: the user attribute of a failed trial that holds its error, in one line
FAIL_REASON = "fail_reason"


@dataclass
class TuneConfig:
    """One ``promptlearning tune``: the base experiment, what varies, and the study's budget."""

    base: Any  # ExperimentConfig every trial starts from
    given: dict[str, Any]  # the nested options the user fixed (these are not searched)
    output: Path
    n_trials: int | None = 20
    timeout: float | None = None  # seconds
    storage: str | None = None  # an Optuna RDB URL; default sqlite:///OUTPUT/study.sqlite3
    study_name: str = "tune"
    seeds: list[int] = field(default_factory=list)  # empty: the base config's seed
    tasks: list[str] = field(default_factory=list)  # empty: the base config's task
    pruner: str = "median"  # median, or none
    sampler_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError(f"--n-trials must be >= 1 (got {self.n_trials})")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"--timeout must be > 0 seconds (got {self.timeout})")
        if not 0 <= self.sampler_seed < 2**32:
            raise ConfigError(f"--sampler-seed must be between 0 and 2**32 - 1 (got {self.sampler_seed})")
        if self.pruner not in ("median", "none"):
            raise ConfigError(f"--pruner must be median or none (got {self.pruner!r})")
        if getattr(self.base, "ensemble", None) is not None:  # each trial trains and scores one prompt
            raise ConfigError("tune scores one prompt per trial, so `ensemble` would be ignored; remove it, then "
                              "train the best as an ensemble: promptlearning train --config OUTPUT/best.yaml "
                              "--ensemble N")
        if self.base.tasks:
            raise ConfigError("tune runs one task per training run; give the tasks to average over with "
                              "--on-tasks A,B instead of --tasks")

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.output / STUDY_FILE).resolve()}"

    def runs(self) -> list[tuple[str | None, int | None]]:
        """(task, seed) of each training run of a trial; None keeps the base config's."""
        tasks: list[str | None] = list(self.tasks) or [None]
        seeds: list[int | None] = list(self.seeds) or [None]
        return [(t, s) for t in tasks for s in seeds]

    def setup(self, space: dict[str, Any]) -> str:
        """What a study was made for (base config, runs, space): a resumed study must match it."""
        base = self.base.to_dict() | {"output_dir": None, "train": self.base.train.to_dict()}  # train: as bench keys
        return json.dumps({"base": base, "runs": self.runs(),
                           "space": describe(space)}, sort_keys=True, default=str)


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("promptlearning tune needs Optuna; pip install 'promptlearning[tune]'") from None
    return optuna


def trial_config(cfg: TuneConfig, params: dict[str, Any], task: str | None, seed: int | None) -> Any:
    """The ExperimentConfig of one training run of a trial."""
    base = cfg.base
    values = apply({"train": {}, "method_options": {}}, params)
    data = dataclasses.replace(base.data, max_test=TRIAL_MAX_TEST,
                               **({"task": task} if task is not None else {}),
                               **({"data_seed": seed} if seed is not None else {}))
    train = dataclasses.replace(base.train, quiet=True, **values["train"],
                                **({"seed": seed} if seed is not None else {}))
    return dataclasses.replace(base, data=data, train=train, output_dir=None,
                               method_options={**base.method_options, **values["method_options"]})


def run_trial(cfg: TuneConfig, params: dict[str, Any], trial: Any) -> list[float]:
    """Train one trial's runs (tasks x seeds) with ``params``; their dev accuracies, in order.

    ``trial`` is what the runs report to: Optuna's trial here, or a Ray task's relay to the driver
    (anything with ``report``, ``should_prune`` and ``set_user_attr``). Raises ``optuna.TrialPruned``
    when the pruner stops the trial on its dev curve."""
    from promptlearning.runs.single_task import run_experiment

    scores: list[float] = []
    for i, (task, seed) in enumerate(cfg.runs()):
        run = trial_config(cfg, params, task, seed)
        result = run_experiment(run, baseline=False, log=lambda _: None,
                                callbacks=[DevCurvePruning(trial, i * run.train.max_steps,
                                                           warmup=run.train.max_steps // 2)])
        result.pop("_model", None)
        scores.append(float(result["dev_accuracy"]))
        trial.set_user_attr("dev_accuracies", list(scores))
    return scores


def make_objective(cfg: TuneConfig, space: dict[str, Any]) -> Callable[[Any], float]:
    def objective(trial: Any) -> float:
        try:
            return statistics.mean(run_trial(cfg, suggest(trial, space), trial))
        except PromptLearningError as exc:  # what the study's error names when failures stop it
            trial.set_user_attr(FAIL_REASON, one_line(exc))
            raise

    return objective


def open_storage(optuna: Any, cfg: TuneConfig) -> Any:
    """The study's RDB storage, with heartbeats: a killed trial stops beating, and after the grace period
    it is failed and its values are tried again."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    try:
        cfg.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the study folder {cfg.output} ({exc.strerror or exc}); give a writable "
                          "--output") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable enough here
            return RDBStorage(cfg.storage_url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES))
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many errors: a bad URL, no driver, no server
        raise ConfigError(f"cannot open the study storage {cfg.storage_url} ({type(exc).__name__}); "
                          "give --storage as an Optuna RDB URL such as sqlite:///study.sqlite3") from None


def make_pruner(optuna: Any, cfg: TuneConfig) -> Any:
    """The study's pruner: median over earlier trials at the same step, or none."""
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    # no pruning in the first half of the first run (DevCurvePruning also skips the first half of every later run)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=cfg.base.train.max_steps // 2)


def _study(optuna: Any, cfg: TuneConfig, space: dict[str, Any], storage: Any) -> Any:
    """Create the study, or load it and check it was made for this same setup."""
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, direction="maximize",
                                pruner=make_pruner(optuna, cfg), load_if_exists=True)
    # the sampler's seed moves on with the trials already there: a resumed study (or a second process on
    # it) must not replay the first one's random draws, which would run the same values twice. The constant
    # liar counts trials still running as bad ones, so trials started side by side (other processes, Ray
    # tasks) do not all go for the same values.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed + len(study.trials), n_startup_trials=5,
                                                   constant_liar=True)
    setup = cfg.setup(space)
    recorded = study.user_attrs.get("setup")
    if recorded is None:
        study.set_user_attr("setup", setup)
        study.enqueue_trial(defaults(cfg.base.method, space), user_attrs={"defaults": True})
    elif recorded != setup:
        raise ConfigError(f"study {cfg.study_name!r} in {cfg.storage_url} was made for another configuration or "
                          "search space; give another --study-name or --output to start a new one")
    return study


FINISHED = ("COMPLETE", "PRUNED")


def finished_trials(optuna: Any, study: Any) -> list[Any]:
    states = tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)
    return list(study.get_trials(deepcopy=False, states=states))


class Progress:
    """What happens after each finished trial, wherever it ran: its log line, the count of failures in a
    row, and whether the study should stop (enough finished trials, or too many failures)."""

    def __init__(self, optuna: Any, study: Any, target: int | None, log: Log) -> None:
        self.optuna, self.study, self.target, self.log = optuna, study, target, log
        self.failures = 0
        self.last_failure = ""

    def record(self, trial: Any, note: str = "", counts: bool = True) -> bool:
        """Log ``trial`` (a FrozenTrial); True when the study should start no more trials. A failure that
        does not ``count`` (a lost worker whose trial runs again) neither counts nor resets the row."""
        state = trial.state.name
        if state == "FAIL" and counts:
            self.failures += 1
            self.last_failure = trial.user_attrs.get(FAIL_REASON, "")
        elif state != "FAIL":
            self.failures = 0
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        value = f"dev {trial.value:.4f}" if trial.value is not None else state.lower()
        if state == "FAIL" and trial.user_attrs.get(FAIL_REASON):
            value += f" ({trial.user_attrs[FAIL_REASON]})"
        pruned = f" (pruned at step {trial.last_step})" if state == "PRUNED" else ""
        self.log(f"trial {trial.number}: {value}{pruned}{note}  {params}")
        return self.failures >= MAX_FAILURES_IN_A_ROW or (
            self.target is not None and len(finished_trials(self.optuna, self.study)) >= self.target)


@dataclass
class StudyRun:
    """What a :data:`TrialRunner` gets: the open study and what its trials need."""

    optuna: Any
    study: Any
    storage: Any  # the study's RDBStorage (heartbeats, the retry of a stale trial)
    cfg: TuneConfig
    space: dict[str, Any]
    progress: Progress
    log: Log


#: runs trials of ``StudyRun.study`` until its progress says stop or the timeout passed
TrialRunner = Callable[[StudyRun], None]


def run_here(run: StudyRun) -> None:
    """Run the trials one after another in this process, with Optuna's ``optimize``."""
    def callback(study: Any, trial: Any) -> None:
        if run.progress.record(trial):
            study.stop()

    # Optuna logs a trial failed by a user error with its traceback, then again as "failed with value None";
    # the progress line above names the error in one line, so its run loop's warnings are not needed
    quiet = logging.getLogger("optuna.study._optimize")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        run.study.optimize(make_objective(run.cfg, run.space), n_trials=None, timeout=run.cfg.timeout,
                           callbacks=[callback], catch=(PromptLearningError,))
    finally:
        quiet.setLevel(level)


def run_tune(cfg: TuneConfig, log: Log = print, runner: TrialRunner = run_here) -> dict[str, Any]:
    """Run the study until it holds ``n_trials`` finished trials (or ``timeout`` passed); returns its summary."""
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = free_space(cfg.base.method, cfg.given)
    if not space:
        raise ConfigError(f"every option of {cfg.base.method}'s search space was fixed by the flags or the config; "
                          "leave some at their defaults to tune them")
    storage = open_storage(optuna, cfg)
    study = _study(optuna, cfg, space, storage)
    done = len(finished_trials(optuna, study))
    target = cfg.n_trials
    log(f"study {cfg.study_name} in {cfg.storage_url}: {done} finished trial(s)"
        + (f", {max(0, target - done)} to run" if target is not None else "")
        + f"; searching {', '.join(space)}; {len(cfg.runs())} training run(s) per trial")
    progress = Progress(optuna, study, target, log)
    if target is None or done < target:
        runner(StudyRun(optuna, study, storage, cfg, space, progress, log))
    if progress.failures >= MAX_FAILURES_IN_A_ROW:
        raise ConfigError(f"{MAX_FAILURES_IN_A_ROW} trials in a row failed (last: {progress.last_failure}"
                          .splitlines()[0][:200] + "); check the base configuration with `promptlearning train`")
    return summary(optuna, study, cfg)


def summary(optuna: Any, study: Any, cfg: TuneConfig) -> dict[str, Any]:
    """The best trial, the defaults' trial and the counts of a study."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"study {cfg.study_name} has no complete trial yet; run more trials (--n-trials, --timeout)")
    best = max(complete, key=lambda t: (t.value, -t.number))
    # the last trial of the defaults: a retry (of a killed trial) carries the mark too
    default = next((t for t in reversed(study.get_trials(deepcopy=False)) if t.user_attrs.get("defaults")), None)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return {"best_value": best.value, "best_params": dict(best.params), "best_trial": best.number,
            "best_dev_accuracies": best.user_attrs.get("dev_accuracies"),
            "default_value": default.value if default is not None else None,
            "default_state": default.state.name.lower() if default is not None else None,
            "default_params": dict(default.params) if default is not None else None,
            "trials": counts, "storage": cfg.storage_url, "study": cfg.study_name}


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


__all__ = ["TRIAL_MAX_TEST", "Progress", "StudyRun", "TrialRunner", "TuneConfig", "run_here", "run_trial", "run_tune",
           "summary", "trial_config", "where"]
