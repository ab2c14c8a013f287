"""Trials of a tuning study as Ray tasks; this process (the driver) alone reads and writes the study.

Why the driver alone: the study is an RDB, SQLite on this machine by default, and the cluster's
workers may not reach it (with a Ray Client address, ``ray://``, no part of the cluster runs
here at all). So the driver asks Optuna for a trial (``study.ask``: the enqueued defaults first,
then the sampler's values), sends the values to a Ray task that trains the trial's runs with
:func:`~promptlearning.bench.tuning.study.run_trial` (what a local trial runs), and tells Optuna
what came back (``study.tell``), up to ``workers`` trials at once.

Pruning: each dev evaluation of a task goes to the driver through a small actor, the
:class:`ReportDesk`. The task's :class:`RelayedTrial` hands the report to the desk and waits; the
driver takes it off the desk, reports it to the trial it asked (``Trial.report``, at the steps a
local trial reports) and puts Optuna's own answer back (``Trial.should_prune``). A pruned task
returns, and the driver tells Optuna the trial was pruned.

What survives what:

- a trial whose code raises a PromptLearningError fails, as a local one does (3 in a row stop the
  study); any other error fails it and stops the study with its traceback, as it does locally;
- a lost worker (its process killed, its node gone: a Ray error other than the trial's own) fails
  the trial and enqueues its values again, once, as a stale heartbeat does for a local trial;
- a killed driver: Ray cancels its tasks; their trials stay running in the study with a heartbeat
  that stopped, and once it is older than the grace period the next ``tune`` on the study (local
  or Ray) fails them and runs their values again, once;
- Ctrl-C cancels the tasks in flight and fails their trials, as Ctrl-C fails a local trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any

from promptlearning.bench.executors.ray_cluster import RayExecutor, import_ray, prepare_worker
from promptlearning.bench.runner import one_line
from promptlearning.bench.tuning.space import suggest
from promptlearning.bench.tuning.study import (
    FAIL_REASON,
    MAX_RETRIES,
    StudyRun,
    TuneConfig,
    finished_trials,
    run_trial,
)
from promptlearning.errors import ConfigError, PromptLearningError

#: a request on the desk: (its key, trial number, "report" or "set_user_attr", the call's arguments)
Request = tuple[int, int, str, tuple[Any, ...]]


@dataclass(frozen=True)
class RayOptions:
    """``tune --executor ray``'s options: the cluster, trials at once, threads and GPUs per trial."""

    address: str | None = None  # None: RAY_ADDRESS, else a new local cluster
    workers: int | None = None  # None: the cluster's CPUs // threads
    threads: int | None = None  # None: 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1 (got {self.workers})")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1 (got {self.threads})")


class ReportDesk:
    """An async Ray actor between the tasks and the driver: a task's call waits here for the driver's answer.

    It holds no study and touches no file, so it runs anywhere; it is placed on the driver's node."""

    def __init__(self) -> None:
        self._waiting: list[Request] = []
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._arrived = asyncio.Event()
        self._next = 0

    async def relay(self, number: int, kind: str, args: tuple[Any, ...]) -> Any:
        """A task's ``kind`` call on trial ``number``: returns the driver's answer once it gives one."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        key, self._next = self._next, self._next + 1
        self._answers[key] = future
        self._waiting.append((key, number, kind, args))
        self._arrived.set()
        return await future

    async def take(self, wait_seconds: float) -> list[Request]:
        """The calls waiting for an answer; the driver's long poll (returns at the first, or after the wait)."""
        if not self._waiting:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait_seconds)
        self._arrived.clear()
        taken, self._waiting = self._waiting, []
        return taken

    async def answer(self, answers: list[tuple[int, Any]]) -> None:
        for key, value in answers:
            future = self._answers.pop(key, None)
            if future is not None and not future.done():
                future.set_result(value)


class RelayedTrial:
    """A trial as its Ray task sees it: what :func:`run_trial` and ``DevCurvePruning`` call on it
    (``report``, ``should_prune``, ``set_user_attr``) goes to the driver through the desk."""

    def __init__(self, desk: Any, number: int) -> None:
        self.desk = desk
        self.number = number
        self._prune = False

    def _relay(self, kind: str, *args: Any) -> Any:
        import ray

        return ray.get(self.desk.relay.remote(self.number, kind, args))

    def report(self, value: float, step: int) -> None:
        self._prune = bool(self._relay("report", float(value), int(step)))

    def should_prune(self) -> bool:
        """The pruner's answer to the last report (the driver asked it when the report came in)."""
        return self._prune

    def set_user_attr(self, key: str, value: Any) -> None:
        self._relay("set_user_attr", key, value)


def train_trial_in_worker(cfg: TuneConfig, params: dict[str, Any], trial: RelayedTrial,
                          threads: int) -> list[float] | None:
    """The body of one Ray task: the trial's runs with ``threads`` torch threads; their dev accuracies,
    or None when the pruner stopped the trial."""
    import optuna

    prepare_worker(threads)
    try:
        return run_trial(cfg, params, trial)
    except optuna.TrialPruned:
        return None


class RayTrials:
    """A :data:`~promptlearning.bench.tuning.study.TrialRunner`: each trial a Ray task, the driver the study's only writer."""

    def __init__(self, options: RayOptions) -> None:
        import_ray()  # without the extra: one line naming it, before the study is opened
        self.options = options
        self.executor = RayExecutor(options.address, gpus=options.gpus, gpus_flag="--gpus-per-trial")

    def __call__(self, run: StudyRun) -> None:
        ray = self.executor.connect()
        try:
            workers, threads = self.executor.plan(self.options.workers, self.options.threads)
            run.log(f"Ray: up to {workers} trial(s) at once, {threads} torch thread(s)"
                    + (f" and {self.options.gpus:g} GPU" if self.options.gpus else "") + " each")
            desk = ray.remote(ReportDesk).options(num_cpus=0, **_near_the_driver(ray)).remote()
            try:
                _Driver(ray, run, desk, workers, threads, self.options.gpus).run()
            finally:
                ray.kill(desk)
        finally:
            self.executor.disconnect(ray)


def _near_the_driver(ray: Any) -> dict[str, Any]:
    """Place the desk on the driver's node when Ray can say which that is (it then dies only with the driver);
    anywhere else will do (soft), since it holds nothing but the calls in flight."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - e.g. a Ray Client session, whose driver is on no node of the cluster
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}


class _Driver:
    """One study's loop: start trials while there is room, answer the tasks' reports, record what returns."""

    def __init__(self, ray: Any, run: StudyRun, desk: Any, workers: int, threads: int, gpus: float) -> None:
        self.ray, self.run_, self.desk = ray, run, desk
        self.optuna, self.study, self.storage = run.optuna, run.study, run.storage
        self.workers, self.threads = workers, threads
        # a task asks for no GPU unless told: Ray hides the GPUs from tasks that ask for none
        self.task = ray.remote(train_trial_in_worker).options(num_cpus=threads, num_gpus=gpus, max_retries=0)
        self.cfg_ref = ray.put(run.cfg)  # one copy in the object store for every task
        self.in_flight: dict[Any, Any] = {}  # task ref -> the Optuna trial it trains
        self.stopping = False
        self.deadline = None if run.cfg.timeout is None else time.monotonic() + run.cfg.timeout
        self.beat_seconds = float(self.storage.get_heartbeat_interval())
        self.beaten = time.monotonic()

    def run(self) -> None:
        take = self.desk.take.remote(self.beat_seconds)
        try:
            while True:
                while self._room():
                    self._start()
                if not self.in_flight:
                    return
                ready, _ = self.ray.wait([take, *self.in_flight], num_returns=1, timeout=self.beat_seconds)
                if take in ready:
                    self._answer(self.ray.get(take))
                    take = self.desk.take.remote(self.beat_seconds)
                for ref in ready:
                    if ref in self.in_flight:
                        self._finish(ref)
                if time.monotonic() - self.beaten >= self.beat_seconds:
                    self._beat()
        except BaseException:  # Ctrl-C, or an error that stops the study: no trial is left running
            for ref, trial in self.in_flight.items():
                self.ray.cancel(ref, force=True)
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise

    def _room(self) -> bool:
        """Whether to start another trial: a free worker, time left, and finished + running < n_trials."""
        if self.stopping or len(self.in_flight) >= self.workers:
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        target = self.run_.progress.target
        return target is None or len(finished_trials(self.optuna, self.study)) + len(self.in_flight) < target

    def _beat(self) -> None:
        """Touch the heartbeat of every trial in flight, so no ``tune`` on the study takes them for dead."""
        for trial in self.in_flight.values():
            self.storage.record_heartbeat(trial._trial_id)  # the storage keys heartbeats by trial id
        self.beaten = time.monotonic()

    def _start(self) -> None:
        self._beat()  # ours are fresh before the stale ones (a killed driver's or process's) are failed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")  # this driver beats for its trials
            self.optuna.storages.fail_stale_trials(self.study)  # as optimize() does before each trial
            trial = self.study.ask()
        self.storage.record_heartbeat(trial._trial_id)
        params = suggest(trial, self.run_.space)
        ref = self.task.remote(self.cfg_ref, params, RelayedTrial(self.desk, trial.number), self.threads)
        self.in_flight[ref] = trial

    def _answer(self, requests: list[Request]) -> None:
        """Put the tasks' calls to their trials and give back what they return (the pruner's verdict)."""
        trials = {t.number: t for t in self.in_flight.values()}
        answers: list[tuple[int, Any]] = []
        for key, number, kind, args in requests:
            trial = trials.get(number)
            if trial is None:  # no longer in flight (cancelled): stop it
                answers.append((key, True))
            elif kind == "report":
                trial.report(*args)
                answers.append((key, trial.should_prune()))
            else:
                trial.set_user_attr(*args)
                answers.append((key, None))
        self.desk.answer.remote(answers)

    def _finish(self, ref: Any) -> None:
        """Tell Optuna how the task of ``ref`` ended: complete, pruned, failed, or lost (run again once)."""
        states = self.optuna.trial.TrialState
        trial = self.in_flight.pop(ref)
        try:
            scores = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # the trial's own error
            if not isinstance(exc.cause, PromptLearningError):
                self.study.tell(trial, state=states.FAIL)
                raise
            trial.set_user_attr(FAIL_REASON, one_line(exc.cause))
            self._record(self.study.tell(trial, state=states.FAIL))
        except self.ray.exceptions.RayError as exc:  # the worker or its node died under the trial
            frozen = self.study.tell(trial, state=states.FAIL)
            again = len(frozen.system_attrs.get("retry_history", [])) < MAX_RETRIES
            if again:  # the retry of a stale trial: its values enqueued, the retry counted in the new trial
                self.storage.get_heartbeat_stale_trial_callback()(self.study, frozen)
            self._record(frozen, f" (worker lost: {type(exc).__name__}; "
                         + ("its values run again)" if again else "not run again)"), counts=not again)
        else:
            self._record(self.study.tell(trial, state=states.PRUNED) if scores is None
                         else self.study.tell(trial, statistics.mean(scores)))

    def _record(self, frozen: Any, note: str = "", counts: bool = True) -> None:
        if self.run_.progress.record(frozen, note, counts):
            self.stopping = True  # start no more; the trials in flight finish


__all__ = ["RayOptions", "RayTrials", "RelayedTrial", "ReportDesk", "train_trial_in_worker"]
