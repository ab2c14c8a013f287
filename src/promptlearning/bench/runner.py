"""Run a suite's jobs through the results store, in this process or in N worker processes.

What one job runs is its kind's business (:mod:`promptlearning.bench.kinds`: an experiment
goes through :func:`promptlearning.runs.single_task.run_experiment`, so a benchmark number
means what ``promptlearning train`` prints); the runner only claims, runs and records.

Reliability rules: a job that raises is recorded as ``failed`` with its error type and one
line, and the sweep goes on; Ctrl-C (or SIGTERM) puts the running job back to ``pending``
and stops; finished results are committed one by one, so nothing done is ever lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from promptlearning.bench.kinds import get_kind, kind_of
from promptlearning.bench.measure import (
    cpu_model,
    machine_info,
    measure_latency,
    peak_memory_mb,
    reset_peak_memory,
)
from promptlearning.bench.store import ResultStore, new_owner
from promptlearning.bench.suite import Job, Suite

__all__ = ["Executor", "cpu_model", "describe", "execute_job", "finished_line", "local_plan", "machine_info",
           "measure_latency", "one_line", "peak_memory_mb", "reset_peak_memory", "run_bench", "run_local",
           "threads_per_worker"]

Log = Callable[[str], None]
HEARTBEAT_SECONDS = 60.0


# ---------------------------------------------------------------------------- one job
def execute_job(job: Job, log: Log = lambda _: None, workdir: Path | None = None) -> dict[str, Any]:
    """Run one job through its kind's module and return everything the store keeps (raises on failure).

    ``workdir`` (the store's directory) is where a kind keeps what several jobs share, such as
    the source model of held-out-task jobs."""
    return get_kind(kind_of(job.config)).execute(job, log, workdir=workdir)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — what a failed row records."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class _Heartbeat:
    """Touch the running row every minute, so a live job is never taken for a dead one."""

    def __init__(self, store_file: Path, key: str, owner: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store_file, key, owner), daemon=True)

    def _beat(self, store_file: Path, key: str, owner: str) -> None:
        store = ResultStore(store_file)
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                store.heartbeat(key, owner)
        finally:
            store.close()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def describe(job: Job) -> str:
    c = job.config
    return f"{job.task} {job.label} K={c['data']['shots']} seed {c['train'].get('seed')}"


class Pace:
    """How long this worker's jobs took, for the time-left estimate on each progress line."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.jobs = 0

    def add(self, seconds: float) -> None:
        self.seconds += seconds
        self.jobs += 1

    def left(self, counts: dict[str, int]) -> str:
        """``, about N min left`` from the mean job time, the jobs not finished and the workers running them."""
        if not self.jobs:
            return ""
        unfinished = counts.get("pending", 0) + counts.get("running", 0)
        if not unfinished:
            return ""
        workers = max(1, counts.get("running", 0))
        seconds = self.seconds / self.jobs * unfinished / workers
        return f", about {seconds / 60:.0f} min left" if seconds >= 90 else f", about {seconds:.0f} s left"


def run_one(store: ResultStore, job: Job, owner: str, log: Log, verbose: bool = False,
            pace: Pace | None = None) -> str:
    """Run a claimed job and record it; returns its final status. Ctrl-C puts it back."""
    started = time.perf_counter()
    try:
        with _Heartbeat(store.path, job.key, owner):
            result = execute_job(job, log if verbose else (lambda _: None), workdir=store.path.parent)
    except KeyboardInterrupt:
        store.release(job.key, owner)
        log(f"interrupted: {describe(job)} is pending again")
        raise
    except Exception as exc:  # any failure is recorded and the sweep goes on
        store.fail(job.key, owner, one_line(exc), traceback.format_exc())
        log(f"FAILED {describe(job)}: {one_line(exc)}")
        return "failed"
    store.finish(job.key, owner, result)
    log(finished_line(store, job, result, time.perf_counter() - started, pace))
    return "done"


def finished_line(store: ResultStore, job: Job, result: dict[str, Any], seconds: float, pace: Pace | None) -> str:
    """The progress line of a finished job: its scores, its time and the time the sweep has left."""
    counts = store.counts()
    if pace is not None:
        pace.add(seconds)
    numbers = "".join(f" {name} {result[key]:.4f}" for name, key in (("test", "test_accuracy"), ("dev", "dev_accuracy"))
                      if isinstance(result.get(key), float))
    per_step = f", {result['seconds_per_step']:.3f} s/step" if result.get("seconds_per_step") is not None else ""
    left = pace.left(counts) if pace is not None else ""
    return (f"[{counts['done'] + counts['failed']}/{sum(counts.values())}] {describe(job)}:{numbers} "
            f"({seconds:.0f} s{per_step}{left})")


def work_loop(store: ResultStore, keys: list[str], log: Log, verbose: bool = False) -> dict[str, int]:
    """Claim and run jobs of this suite until none is left."""
    owner = new_owner()
    done = {"done": 0, "failed": 0}
    pace = Pace()
    try:
        while (job := store.claim(owner, keys)) is not None:
            done[run_one(store, job, owner, log, verbose, pace)] += 1
    except KeyboardInterrupt:
        # the interrupt may land between a claim's commit and the job's start: free all we hold
        store.release_owner_prefix(owner, interrupted=True)
        raise
    return done


# ---------------------------------------------------------------------------- workers
def _raise_interrupt(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # one interrupt is enough; let cleanup finish
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(store_file: str, keys: list[str], threads: int, name: str, verbose: bool) -> None:
    """Entry point of a spawned worker process."""
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    def log(line: str) -> None:
        print(f"[{name}] {line}", flush=True)

    store = ResultStore(store_file)
    try:
        work_loop(store, keys, log, verbose)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


def threads_per_worker(workers: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


class Executor(Protocol):
    """Where a sweep's jobs run (:mod:`promptlearning.bench.executors`): worker processes here, or Ray tasks.

    ``run_bench`` prepares the store and hands the executor the keys to run; the executor claims
    them through the store and records each result, so resuming is the store's business alone."""

    name: str

    def plan(self, workers: int | None, threads: int | None) -> tuple[int, int]:
        """The (jobs at once, torch threads per job) it will use, from the user's choices or its defaults."""
        ...

    def run(self, store_file: Path, keys: list[str], *, workers: int, threads: int, log: Log, verbose: bool) -> None:
        """Run the suite's jobs not done yet; Ctrl-C puts running ones back to pending and re-raises."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the store's meta records about where the sweep ran."""
        ...


def local_plan(workers: int | None, threads: int | None) -> tuple[int, int]:
    """One process unless told otherwise; torch threads default to cores // workers."""
    from promptlearning.errors import ConfigError

    workers = 1 if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1 (got {workers})")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {threads})")
    return workers, threads or threads_per_worker(workers)


def run_local(store_file: Path, keys: list[str], *, workers: int, threads: int, log: Log, verbose: bool) -> None:
    """The local executor: this process alone, or ``workers`` spawned processes sharing the store."""
    if workers == 1:
        torch.set_num_threads(threads)
        with ResultStore(store_file) as store:
            work_loop(store, keys, log, verbose)
    else:
        _run_workers(store_file, keys, workers, threads, log, verbose)


def run_bench(suite: Suite, store_dir: str | Path, *, workers: int | None = None, threads: int | None = None,
              retry_failed: bool = False, command: str = "", log: Log = print,
              verbose: bool = False, executor: Executor | None = None) -> dict[str, int]:
    """Add the suite's jobs to the store and run every one not yet done; returns status counts.

    ``executor`` (default: local processes) says where jobs run. Locally ``threads`` (torch
    threads per worker) defaults to cores // workers; on a machine shared with other jobs,
    1 thread per worker avoids OpenMP threads waiting on each other."""
    workers, threads = executor.plan(workers, threads) if executor is not None else local_plan(workers, threads)
    where = {"executor": executor.name, **executor.describe()} if executor is not None else {}
    keys = [job.key for job in suite.jobs]
    with ResultStore(store_dir) as store:
        added = store.add_jobs(suite.jobs, suite.name)
        if retry_failed:
            store.retry_failed(keys)
        entry = {"name": suite.name, "file": str(suite.path), "description": suite.description,
                 "definition": suite.raw}
        # several suites may share one store (e.g. spt reuses fewshot16's baselines): keep each one's entry
        suites = {**store.meta().get("suites", {}), suite.name: entry}
        store.set_meta("suites", suites)
        if store.meta().get("suite", {}).get("name") in (None, suite.name):
            store.set_meta("suite", entry)
        store.set_meta("machine", machine_info() | {"torch_threads": threads, "workers": workers} | where)
        if command:
            store.add_to_meta_list("commands", command)
        counts = store.counts(keys)
        log(f"suite {suite.name}: {len(keys)} jobs ({added} new); done {counts['done']}, failed {counts['failed']}, "
            f"to run {counts['pending'] + counts['running']}; store {store.path}")
        store_file = store.path
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` stops a sweep as cleanly as Ctrl-C (signals only reach the main thread)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    before = torch.get_num_threads()
    try:
        run = executor.run if executor is not None else run_local
        run(store_file, keys, workers=workers, threads=threads, log=log, verbose=verbose)
    finally:
        torch.set_num_threads(before)  # a sweep run from Python (a test, a notebook) leaves the caller's setting
        if main_thread:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])
    with ResultStore(store_file) as store:
        store.set_meta("machine", machine_info() | {"torch_threads": threads, "workers": workers} | where)
        return store.counts(keys)


def _run_workers(store_file: Path, keys: list[str], workers: int, threads: int, log: Log, verbose: bool) -> None:
    ctx = mp.get_context("spawn")
    log(f"{workers} worker processes, {threads} torch thread(s) each")
    procs = [ctx.Process(target=_worker_main, args=(str(store_file), keys, threads, f"w{i}", verbose), daemon=False)
             for i in range(workers)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:  # workers started from a terminal got the SIGINT too; SIGTERM reaches the rest
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        raise
    finally:
        with ResultStore(store_file) as store:  # rows of workers that died hard go back to pending
            for p in procs:
                if p.pid is not None:
                    store.release_owner_prefix(f"{socket.gethostname()}:{p.pid}:")
