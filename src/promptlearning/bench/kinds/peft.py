"""The PEFT job kind: an experiment run through Hugging Face PEFT's method instead of ours.

Its jobs come from experiment suites (a ``peft:prompt_tuning`` entry in ``methods``) and
share the experiment config shape with ``runner: peft``; the experiment kind's
:func:`~promptlearning.bench.kinds.experiment.execute` branches on that one field, since
data, head, trainer and every measurement are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptlearning.bench.jobs import Job
from promptlearning.bench.kinds import experiment


def expand(raw: dict[str, Any], path: Path) -> list[Job]:
    """A PEFT suite is an experiment suite whose methods are ``peft:*`` names."""
    return experiment.expand(raw, path)


def execute(job: Job, log: Any = lambda _: None, workdir: Path | None = None) -> dict[str, Any]:
    return experiment.execute(job, log, workdir)
