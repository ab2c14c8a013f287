"""The Ray executor: each job runs in a Ray task; this process (the driver) alone owns the store.

Why the driver owns the store: SQLite's locks only work on one host, and workers on other
machines may not even see its file. So the driver claims a job (``running``, owned by this
process), sends it to a Ray task, and records what comes back; it touches the heartbeat of
every job in flight, so none is taken for dead while it runs.

What survives what:

- a job that raises is recorded ``failed`` with its one-line error, and the sweep goes on;
- a lost worker (its process killed, its node gone: any Ray error other than the job's own)
  puts the job back to ``pending`` with the attempt counted, and the driver sends it again;
  after the store's ``max_attempts`` it is given up as ``failed``;
- a killed driver leaves its jobs ``running`` under a dead owner: the next run of the same
  command takes them again, and never re-runs a job whose result was recorded (Ray cancels a
  dead driver's tasks by itself);
- Ctrl-C cancels the tasks in flight and puts their jobs back to ``pending``.

A task sees a GPU only when it asks for one (``gpus``, the CLI's ``--gpus-per-job``; fractions
share a GPU between jobs): Ray hides the GPUs from tasks that ask for none.

On a cluster of several machines every node needs promptlearning installed (the same
version), and held-out-task suites need the store's folder on a shared filesystem (their
jobs share a trained source model kept there).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from promptlearning.bench.runner import (
    HEARTBEAT_SECONDS,
    Log,
    Pace,
    describe,
    execute_job,
    finished_line,
    one_line,
)
from promptlearning.bench.store import ResultStore, new_owner
from promptlearning.bench.suite import Job
from promptlearning.errors import ConfigError

#: what a Ray task calls: (job, log, workdir=) -> the result row; execute_job unless a test swaps it
JobFunction = Callable[..., dict[str, Any]]
#: the object store of a cluster this driver starts itself: results are small JSON rows
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray; pip install 'promptlearning[ray]' (or use --executor local)") \
            from None
    return ray


def prepare_worker(threads: int) -> None:
    """What every task does first: its share of torch threads, and no tokenizer threads or library chatter
    on top of it."""
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hf_logging.set_verbosity_error()


def run_job_in_worker(job: Job, threads: int, workdir: Path | None, verbose: bool,
                      execute: JobFunction = execute_job) -> dict[str, Any]:
    """The body of one Ray task: run the job with ``threads`` torch threads and return its result row."""
    prepare_worker(threads)

    def log(line: str) -> None:
        print(f"[{describe(job)}] {line}", flush=True)

    return execute(job, log if verbose else (lambda _: None), workdir=workdir)


class RayExecutor:
    """One Ray task per job, at most ``workers`` in flight; the driver records every result."""

    name = "ray"

    def __init__(self, address: str | None = None, *, gpus: float = 0.0, execute: JobFunction = execute_job,
                 poll_seconds: float = HEARTBEAT_SECONDS, gpus_flag: str = "--gpus-per-job") -> None:
        if not gpus >= 0:
            raise ConfigError(f"{gpus_flag} must be >= 0 (got {gpus})")
        self.address = address
        self.gpus = gpus
        self.gpus_flag = gpus_flag  # the option that set ``gpus``, as errors name it
        self.execute = execute
        self.poll_seconds = poll_seconds
        self._started_here = False

    # ------------------------------------------------------------------ the cluster
    def connect(self) -> ModuleType:
        """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one; a running
        ``ray.init`` of the caller (a notebook, a test) is used as it is."""
        ray = import_ray()
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            options["object_store_memory"] = LOCAL_OBJECT_STORE_BYTES
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, TimeoutError, ValueError) as exc:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
            raise ConfigError(f"cannot reach the Ray cluster at {where} ({str(exc).splitlines()[0][:120]}); "
                              "start it with `ray start --head` or check --address") from None
        self._started_here = True
        return ray

    def disconnect(self, ray: ModuleType) -> None:
        if self._started_here:
            ray.shutdown()
            self._started_here = False

    def plan(self, workers: int | None, threads: int | None) -> tuple[int, int]:
        """Defaults: 1 torch thread per job, as many jobs at once as the cluster has CPUs for."""
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1 (got {workers})")
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads must be >= 1 (got {threads})")
        threads = threads or 1
        resources = self.connect().cluster_resources()
        if self.gpus > resources.get("GPU", 0):  # Ray would wait forever for a GPU that is not there
            raise ConfigError(f"{self.gpus_flag} {self.gpus:g} but the Ray cluster has {resources.get('GPU', 0):g} GPU(s); "
                              "lower it or join a cluster with GPUs (--address)")
        if workers is None:
            workers = max(1, int(resources.get("CPU", 1)) // threads)
            if self.gpus:
                workers = min(workers, max(1, int(resources["GPU"] / self.gpus)))
        return workers, threads

    def describe(self) -> dict[str, Any]:
        ray = self.connect()
        return {"ray_address": self.address or os.environ.get("RAY_ADDRESS") or "local",
                "ray_cpus": ray.cluster_resources().get("CPU"), "ray_nodes": len(ray.nodes())}

    # ------------------------------------------------------------------ the sweep
    def run(self, store_file: Path, keys: list[str], *, workers: int, threads: int, log: Log, verbose: bool) -> None:
        ray = self.connect()
        # a task that asks for no GPU sees none (Ray empties CUDA_VISIBLE_DEVICES): --gpus-per-job gives it one
        task = ray.remote(run_job_in_worker).options(num_cpus=threads, num_gpus=self.gpus, max_retries=0)
        log(f"Ray: up to {workers} job(s) at once, {threads} torch thread(s)"
            + (f" and {self.gpus:g} GPU" if self.gpus else "") + " each")
        in_flight: dict[Any, tuple[Job, str, float]] = {}  # task ref -> (job, owner of its row, start time)
        pace = Pace()
        try:
            with ResultStore(store_file) as store:
                try:
                    while True:
                        while len(in_flight) < workers:
                            owner = new_owner()
                            job = store.claim(owner, keys)
                            if job is None:
                                break
                            ref = task.remote(job, threads, store_file.parent, verbose, self.execute)
                            in_flight[ref] = (job, owner, time.perf_counter())
                        if not in_flight:
                            break
                        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=self.poll_seconds)
                        for ref in ready:
                            job, owner, started = in_flight.pop(ref)
                            self._record(ray, store, ref, job, owner, time.perf_counter() - started, pace, log)
                        for job, owner, _ in in_flight.values():
                            store.heartbeat(job.key, owner)
                except KeyboardInterrupt:
                    for ref, (job, owner, _) in in_flight.items():
                        ray.cancel(ref, force=True)
                        store.release(job.key, owner)
                        log(f"interrupted: {describe(job)} is pending again")
                    raise
        finally:
            self.disconnect(ray)

    @staticmethod
    def _record(ray: ModuleType, store: ResultStore, ref: Any, job: Job, owner: str, seconds: float,
                pace: Pace, log: Log) -> None:
        """Store what one task returned: a result, the job's own failure, or a lost worker (run it again)."""
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the job raised: a failed row, as the local executor records it
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            store.fail(job.key, owner, one_line(cause), str(exc))
            log(f"FAILED {describe(job)}: {one_line(cause)}")
        except ray.exceptions.RayError as exc:  # the worker or its node died: the attempt counts, the job goes back
            store.release_owner_prefix(owner)
            log(f"lost: {describe(job)} ({type(exc).__name__}); it will run again")
        else:
            store.finish(job.key, owner, result)
            log(finished_line(store, job, result, seconds, pace))


def make(address: str | None = None, gpus: float | None = None) -> RayExecutor:
    return RayExecutor(address, gpus=gpus or 0.0)
