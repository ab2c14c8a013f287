"""Tuned against default hyper-parameters, per method, on the same (task, seed) pairs (issue 20, item 4).

`promptlearning tune` picks a configuration on dev accuracy; whether it is better is a test-set question
on seeds the study did not see. This script reads a bench store and, for each method given as
``DEFAULT_LABEL:TUNED_LABEL``, pairs the default row and the tuned row of every (task, seed) asked for,
and writes a Markdown table: test accuracy per task (mean over seeds), the mean, the paired gain
(tuned minus default, mean ± sample std over the pairs) and in how many pairs the tuned row won.
A pair with either row missing is left out and counted, so a partial sweep reports what it has.

    python benchmarks/tuned_vs_default.py --store benchmarks/results/fewshot16 \
        --tasks mr,cr,subj,tweets --seeds 21,42,87 --pair prompt_tuning:prompt_tuning_tuned ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from promptlearning.bench.jobs import with_legacy_lr
from promptlearning.bench.store import ResultStore

#: settings of a row shown in the table: what tune varies
SHOWN = ("num_tokens", "init", "init_std", "reparam", "encoder", "encoder_hidden", "bottleneck")


def _setting(config: dict[str, Any]) -> str:
    config = with_legacy_lr(config)  # a row stored with lr null ran at the default of its day
    opts = config.get("method_options") or {}
    train = config.get("train") or {}
    parts = [f"lr {train['lr']:g}" if train.get("lr") is not None else "lr default"]
    if train.get("head_lr") is not None and config.get("method") == "linear_probe":
        parts = [f"head_lr {train['head_lr']:g}"]
    parts += [f"{k} {opts[k]}" for k in SHOWN if k in opts]
    return ", ".join(parts)


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:+.1f}"
    return f"{statistics.mean(values):+.1f} ± {statistics.stdev(values):.1f}"


def _kept(r: dict[str, Any], tasks: list[str], seeds: list[int], shots: int) -> bool:
    return bool(r["status"] == "done" and r["result"] and r["task"] in tasks and r["seed"] in seeds
                and r["shots"] == shots)


def table(rows: list[dict[str, Any]], pairs: list[tuple[str, str]], tasks: list[str], seeds: list[int],
          shots: int) -> str:
    by: dict[tuple[str, str, int], dict[str, Any]] = {}
    labels = {x for p in pairs for x in p}
    for r in rows:
        if r["label"] in labels and _kept(r, tasks, seeds, shots):
            if (r["label"], r["task"], r["seed"]) in by:  # one label, task, seed and shots: one protocol
                raise SystemExit(f"two {r['label']} rows for {r['task']} seed {r['seed']} at {shots} shots")
            by[(r["label"], r["task"], r["seed"])] = r
    head = "| method | setting | " + " | ".join(tasks) + " | mean | paired gain (points) | tuned better |"
    lines = [head, "|" + "---|" * 2 + "---:|" * (len(tasks) + 3)]
    missing = 0
    for default, tuned in pairs:
        gains: list[float] = []
        cells: dict[str, dict[str, list[float]]] = {default: {}, tuned: {}}
        settings: dict[str, str] = {}
        for task in tasks:
            for seed in seeds:
                a, b = by.get((default, task, seed)), by.get((tuned, task, seed))
                if a is None or b is None:
                    missing += 1
                    continue
                for label, row in ((default, a), (tuned, b)):
                    cells[label].setdefault(task, []).append(100 * row["result"]["test_accuracy"])
                    settings.setdefault(label, _setting(row["config"]))
                gains.append(100 * (b["result"]["test_accuracy"] - a["result"]["test_accuracy"]))
        for label in (default, tuned):
            per_task = [statistics.mean(cells[label][t]) if cells[label].get(t) else None for t in tasks]
            shown = [f"{v:.1f}" for v in per_task if v is not None]
            mean = statistics.mean([v for v in per_task if v is not None]) if shown else None
            gain = _mean_std(gains) if label == tuned else ""
            wins = f"{sum(g > 0 for g in gains)} of {len(gains)} (ties {sum(g == 0 for g in gains)})" if label == tuned else ""
            lines.append(f"| {label} | {settings.get(label, '–')} | "
                         + " | ".join(f"{v:.1f}" if v is not None else "–" for v in per_task)
                         + f" | {f'{mean:.1f}' if mean is not None else '–'} | {gain} | {wins} |")
    if missing:
        lines.append(f"\n{missing} (method, task, seed) pair(s) lacked a default or a tuned row and are left out.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--seeds", required=True)
    ap.add_argument("--pair", action="append", required=True, help="DEFAULT_LABEL:TUNED_LABEL, repeatable")
    ap.add_argument("--shots", type=int, default=16, help="K per class of the rows compared (default 16)")
    ap.add_argument("--json", help="also write the paired rows here")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    pairs = [tuple(p.split(":", 1)) for p in args.pair]
    with ResultStore(Path(args.store)) as store:
        rows = store.rows()
    print(table(rows, pairs, tasks, seeds, args.shots))  # type: ignore[arg-type]
    if args.json:
        keep = [{"label": r["label"], "task": r["task"], "seed": r["seed"], "config": r["config"],
                 "test_accuracy": r["result"]["test_accuracy"]} for r in rows
                if _kept(r, tasks, seeds, args.shots) and r["label"] in {x for p in pairs for x in p}]
        Path(args.json).write_text(json.dumps(keep, indent=1) + "\n")


if __name__ == "__main__":
    main()
