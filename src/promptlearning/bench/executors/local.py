"""The local executor: this process alone, or N spawned worker processes sharing the store.

The machinery (claims, heartbeats, workers, Ctrl-C) lives in :mod:`promptlearning.bench.runner`,
which runs it when no executor is given; this is its entry in the executor table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptlearning.bench.runner import Log, local_plan, run_local


class LocalExecutor:
    """Jobs run on this machine; each worker claims jobs from the store itself."""

    name = "local"

    def plan(self, workers: int | None, threads: int | None) -> tuple[int, int]:
        return local_plan(workers, threads)

    def run(self, store_file: Path, keys: list[str], *, workers: int, threads: int, log: Log, verbose: bool) -> None:
        run_local(store_file, keys, workers=workers, threads=threads, log=log, verbose=verbose)

    def describe(self) -> dict[str, Any]:
        return {}


def make(address: str | None = None, gpus: float | None = None) -> LocalExecutor:
    """``address`` and ``gpus`` belong to Ray: refused here rather than silently ignored (local jobs use
    the device their train options name)."""
    from promptlearning.errors import ConfigError

    for flag, value in (("--address", address), ("--gpus-per-job", gpus)):
        if value is not None:
            raise ConfigError(f"{flag} is for --executor ray; drop it or add --executor ray")
    return LocalExecutor()
