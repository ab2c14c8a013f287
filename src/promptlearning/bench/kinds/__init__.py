"""Job kinds: what one row of a suite runs. One module per kind, one line in :data:`KINDS`.

A kind module holds two functions:

- ``expand(raw, path) -> list[Job]``: the jobs of a suite file whose ``kind:`` is this kind
  (``raw`` is the parsed YAML, already checked for unknown top-level keys);
- ``execute(job, log) -> dict``: run one job and return everything the store keeps (raises
  on failure; the runner records it).

The kind of a stored job is read back from its config by :func:`kind_of`, so the configs of
jobs stored before kinds existed (``runner: promptlearning`` / ``peft``) keep their keys.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from promptlearning.errors import UnknownNameError

#: kind name -> module (under promptlearning.bench.kinds) that expands and executes it
KINDS = {
    "experiment": "experiment",        # one training run per job (`promptlearning train`)
    "peft": "peft",                    # the same, through Hugging Face PEFT (peft:* methods of experiment suites)
    "heldout": "heldout_task",         # train on source tasks, adapt to a held-out task at K shots (or its dev curve)
    "prompt_search": "prompt_search",  # discrete/black-box search, the hybrid and its soft controls, transfer
    "tagging": "tagging",              # one few-shot tagging run, scored in-domain and on cross-domain test sets
}
#: kinds a suite file may name in ``kind:`` (peft jobs come from experiment suites' ``peft:*`` methods)
SUITE_KINDS = ("experiment", "heldout", "prompt_search", "tagging")


def get_kind(name: str) -> ModuleType:
    """The module of job kind ``name``."""
    if name not in KINDS:
        raise UnknownNameError(f"unknown job kind {name!r}; choose one of: {', '.join(SUITE_KINDS)}")
    return importlib.import_module(f"promptlearning.bench.kinds.{KINDS[name]}")


def kind_of(config: dict[str, Any]) -> str:
    """The kind of a job from its stored config.

    Experiment and PEFT jobs predate kinds and carry only ``runner``; held-out rows recorded
    by the old ``benchmarks/meta_loto.py`` carry ``evaluation: heldout``."""
    if config.get("kind"):
        return str(config["kind"])
    if config.get("evaluation") == "heldout":
        return "heldout"
    return "peft" if config.get("runner") == "peft" else "experiment"
