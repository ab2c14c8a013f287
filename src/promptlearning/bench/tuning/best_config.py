"""The best trial as a YAML file that ``promptlearning train --config`` runs.

It holds what the user gave (flags or their own YAML) plus the tuned values, in the layout of
``train --config``: data options at the top level (``task``, ``shots``, ...), then the
``method_options``, ``train`` and ``head`` sections. Everything else stays at its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from promptlearning.bench.tuning.space import apply
from promptlearning.bench.tuning.study import TuneConfig

BEST_FILE = "best.yaml"
#: top-level keys first, in this order; sections after them
ORDER = ("backbone", "method", "max_length", "template", "truncation", "dtype", "ensemble")


def best_values(cfg: TuneConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The options of the best trial, in ``train --config``'s layout, for its first task and seed."""
    values = apply(cfg.given, params)
    task, seed = cfg.runs()[0]
    if task is not None:
        values.setdefault("data", {})["task"] = task
        values["data"].pop("train_file", None)
    if seed is not None:
        values.setdefault("data", {})["data_seed"] = seed
        values.setdefault("train", {})["seed"] = seed
    if values.get("train", {}).get("lr", 0) is None:  # the method's own rate (a method with nothing of its own)
        del values["train"]["lr"]
    values.get("train", {}).pop("quiet", None)  # how the study printed, not how the best run should
    values.setdefault("method", cfg.base.method)
    out: dict[str, Any] = dict(values.pop("data", {}))
    out.update({k: values.pop(k) for k in ORDER if k in values})
    for key, value in values.items():
        if value not in ({}, None):
            out[key] = value
    return out


def write_best(cfg: TuneConfig, summary: dict[str, Any], command: str = "") -> Path:
    """Write ``OUTPUT/best.yaml``: the best trial's options, with what it scored in a comment."""
    tuned_on = ", ".join(f"{t or cfg.base.data.task or 'data file'} seed {s if s is not None else cfg.base.train.seed}"
                         for t, s in cfg.runs())
    default = summary.get("default_value")
    lines = [f"# written by `{command or 'promptlearning tune'}`",
             f"# best of study {summary['study']!r} ({summary['storage']}): trial {summary['best_trial']}, "
             f"mean dev accuracy {summary['best_value']:.4f} over {tuned_on}",
             f"# the method's defaults scored {default:.4f}" if default is not None else
             f"# the method's defaults: {summary.get('default_state') or 'not run'}",
             "# run it: promptlearning train --config THIS_FILE --output RUN_DIR"]
    if len(cfg.runs()) > 1:
        lines.append("# (task and seed below are the first tuned on; change them for another)")
    path = cfg.output / BEST_FILE
    path.write_text("\n".join(lines) + "\n" + yaml.safe_dump(best_values(cfg, summary["best_params"]),
                                                              sort_keys=False, default_flow_style=False))
    return path
