"""Executors: where a sweep's jobs run. One module per executor, one line in :data:`EXECUTORS`.

``local`` (the default) runs jobs in this process or in spawned worker processes on this
machine, each claiming jobs from the SQLite store; ``ray`` sends each job to a Ray task on a
cluster while this process (the driver) alone reads and writes the store. Either way a job is
keyed by its configuration, so a re-run skips finished jobs and a stopped sweep resumes.
"""

from __future__ import annotations

import importlib
from typing import Any

from promptlearning.bench.runner import Executor
from promptlearning.errors import UnknownNameError

#: executor name -> module (under promptlearning.bench.executors) holding its ``make(**options)``
EXECUTORS = {
    "local": "local",        # this process, or --workers N processes on this machine
    "ray": "ray_cluster",    # one Ray task per job, on a local or remote Ray cluster (--address)
}


def get_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name``, built with its options (``address`` for Ray)."""
    if name not in EXECUTORS:
        raise UnknownNameError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    module = importlib.import_module(f"promptlearning.bench.executors.{EXECUTORS[name]}")
    executor: Executor = module.make(**options)
    return executor


__all__ = ["EXECUTORS", "Executor", "get_executor"]
