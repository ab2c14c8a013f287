"""Run a suite's jobs through the results store, in this process or in N worker processes.

Every job goes through :func:`promptlearning.runs.single_task.run_experiment` (or, for
``peft:*`` methods, :mod:`.peft_runner`, which uses the same data, head and trainer), so a
benchmark number means what ``promptlearning train`` prints. Around each run the bench
measures what a results table needs and training does not report: dev macro-F1, peak
memory and the inference latency overhead against the bare backbone.

Reliability rules: a job that raises is recorded as ``failed`` with its error type and one
line, and the sweep goes on; Ctrl-C (or SIGTERM) puts the running job back to ``pending``
and stops; finished results are committed one by one, so nothing done is ever lost.
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing as mp
import os
import platform
import resource
import signal
import socket
import statistics
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from promptlearning.bench.store import ResultStore, new_owner
from promptlearning.bench.suite import Job, Suite, experiment_config

Log = Callable[[str], None]
HEARTBEAT_SECONDS = 60.0


# ---------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where and with what the numbers were measured (goes into every row and the report)."""
    import transformers

    from promptlearning.version import __version__

    info: dict[str, Any] = {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "torch": torch.__version__, "transformers": transformers.__version__,
                            "promptlearning": __version__, "gpu": None}
    try:
        import peft

        info["peft"] = peft.__version__
    except ImportError:
        info["peft"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------------------- measurements
def reset_peak_memory(device: torch.device | None = None) -> str:
    """Start a fresh peak; returns what the peak will mean (stated in the report)."""
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda max_memory_allocated"
    try:  # Linux: writing 5 resets the RSS high-water mark that getrusage reports
        Path("/proc/self/clear_refs").write_text("5")
        return "process RSS high-water mark during the job (CPU)"
    except OSError:
        return "process RSS high-water mark since the process started (CPU)"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if platform.system() != "Darwin" else kb / 2**20


@torch.no_grad()
def measure_latency(model: Any, items: list[Any], batch_size: int, repeats: int = 3) -> dict[str, Any]:
    """Median forward time of the model and of the bare backbone on the same eval batch."""
    from promptlearning.data.batching import batches

    if not items:
        return {}
    batch = batches(items[:batch_size], batch_size, model.pad_id, model.left_pad)[0].to(model.device)
    batch = dataclasses.replace(batch, labels=None)
    bare = model.backbone.model
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)

    def timed(fn: Callable[[], Any]) -> float:
        sync()
        started = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - started

    def run_model() -> Any:
        return model(batch)

    def run_bare() -> Any:
        return bare(input_ids=batch.input_ids, attention_mask=batch.attention_mask)

    was_training = model.training
    model.eval()
    timed(run_model), timed(run_bare)  # warm-up
    ours, base = [], []
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        ours.append(timed(run_model))
        base.append(timed(run_bare))
    model.train(was_training)
    m, b = statistics.median(ours), statistics.median(base)
    return {"latency_model_ms": 1000 * m, "latency_backbone_ms": 1000 * b, "latency_overhead": m / b,
            "latency_batch": len(batch), "latency_seq_len": int(batch.input_ids.shape[1])}


# ---------------------------------------------------------------------------- one job
def execute_job(job: Job, log: Log = lambda _: None) -> dict[str, Any]:
    """Run one job and return everything the store keeps about it (raises on failure)."""
    from promptlearning.runs.single_task import load_data, make_split, run_experiment
    from promptlearning.training.metrics import evaluate

    cfg = experiment_config(job.config)
    device = torch.device("cuda") if cfg.train.device != "cpu" and torch.cuda.is_available() else torch.device("cpu")
    memory_kind = reset_peak_memory(device)
    if job.config["runner"] == "peft":
        from promptlearning.runs.peft_runner import run_peft_experiment

        result = run_peft_experiment(cfg, log=log)
    else:
        result = run_experiment(cfg, log=log, baseline=False)
    model = result.pop("_model")
    result.pop("adapter", None)
    result["peak_memory_mb"] = peak_memory_mb(device)
    result["peak_memory_kind"] = memory_kind
    split = make_split(cfg.data, load_data(cfg.data))
    dev = evaluate(model, model.encode(split.dev), cfg.train.eval_batch_size) if split.dev else {}
    result["dev_macro_f1"] = dev.get("macro_f1")
    test_items = model.encode(split.test[: cfg.train.eval_batch_size])  # the model's own template, if any
    result.update(measure_latency(model, test_items, cfg.train.eval_batch_size))
    result["batch_size"] = cfg.train.batch_size
    result["lr"] = cfg.train.lr
    result["label"] = job.label
    result["task"] = job.task
    result["dev_curve"] = [list(point) for point in result.get("dev_curve", [])]
    result["machine"] = machine_info()
    result["load_avg_1m"] = os.getloadavg()[0]  # other work on the machine slows every timing
    del model
    gc.collect()
    return result


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


def _describe(job: Job) -> str:
    c = job.config
    return f"{job.task} {job.label} K={c['data']['shots']} seed {c['train']['seed']}"


def run_one(store: ResultStore, job: Job, owner: str, log: Log, verbose: bool = False) -> str:
    """Run a claimed job and record it; returns its final status. Ctrl-C puts it back."""
    started = time.perf_counter()
    try:
        with _Heartbeat(store.path, job.key, owner):
            result = execute_job(job, log if verbose else (lambda _: None))
    except KeyboardInterrupt:
        store.release(job.key, owner)
        log(f"interrupted: {_describe(job)} is pending again")
        raise
    except Exception as exc:  # any failure is recorded and the sweep goes on
        store.fail(job.key, owner, one_line(exc), traceback.format_exc())
        log(f"FAILED {_describe(job)}: {one_line(exc)}")
        return "failed"
    store.finish(job.key, owner, result)
    counts = store.counts()
    log(f"[{counts['done'] + counts['failed']}/{sum(counts.values())}] {_describe(job)}: "
        f"test {result['test_accuracy']:.4f} dev {result['dev_accuracy']:.4f} "
        f"({time.perf_counter() - started:.0f} s, {result['seconds_per_step']:.3f} s/step)")
    return "done"


def work_loop(store: ResultStore, keys: list[str], log: Log, verbose: bool = False) -> dict[str, int]:
    """Claim and run jobs of this suite until none is left."""
    owner = new_owner()
    done = {"done": 0, "failed": 0}
    try:
        while (job := store.claim(owner, keys)) is not None:
            done[run_one(store, job, owner, log, verbose)] += 1
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


def run_bench(suite: Suite, store_dir: str | Path, *, workers: int = 1, threads: int | None = None,
              retry_failed: bool = False, command: str = "", log: Log = print,
              verbose: bool = False) -> dict[str, int]:
    """Add the suite's jobs to the store and run every one not yet done; returns status counts.

    ``threads`` (torch threads per worker) defaults to cores // workers; on a machine shared
    with other jobs, 1 thread per worker avoids OpenMP threads waiting on each other."""
    from promptlearning.errors import ConfigError

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1 (got {workers})")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {threads})")
    threads = threads or threads_per_worker(workers)
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
        store.set_meta("machine", machine_info() | {"torch_threads": threads, "workers": workers})
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
    try:
        if workers == 1:
            torch.set_num_threads(threads)
            with ResultStore(store_file) as store:
                work_loop(store, keys, log, verbose)
        else:
            _run_workers(store_file, keys, workers, threads, log, verbose)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, handlers[0])
            signal.signal(signal.SIGTERM, handlers[1])
    with ResultStore(store_file) as store:
        store.set_meta("machine", machine_info() | {"torch_threads": threads, "workers": workers})
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
