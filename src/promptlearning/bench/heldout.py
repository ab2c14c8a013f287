"""Metric 2 of the report: methods evaluated on a task that none of their training saw.

These rows are jobs of the held-out-task kind (:mod:`promptlearning.bench.kinds.heldout_task`,
suites such as ``benchmarks/suites/meta_loto.yaml``): the cross-task methods are trained on
some tasks, adapted to a held-out one with K examples per class and evaluated there. Their
config names the kind (plus ``heldout_task``, ``train_tasks`` and ``protocol``), which is how
the report keeps them out of every other section and puts them here.

Per held-out task, one table: rows are the fixed hand-written prompt, single-task prompt
tuning on the K examples, and each cross-task method; columns are K; cells are test
accuracy in %, mean ± std over seeds with n. Then one table averaged over the held-out
tasks that have every compared cell.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

HELDOUT = "heldout"
#: tasks that share the sentiment labels and so are "related" to most training tasks
SENTIMENT_TASKS = frozenset({"mr", "cr", "tweets", "nyt", "rt", "tweets3", "drugs3"})
FIXED = "fixed_prompt"
NOTHING = ("No method in this suite is trained on some tasks and evaluated on a held-out one (that arrives with the "
           "cross-task methods); nothing to report yet. (A suite of `kind: heldout`, e.g. "
           "`benchmarks/suites/meta_loto.yaml`, adds such rows to a store.)")
_PROTOCOLS = {
    "leave_one_task_out": ("Leave one task out", "each cross-task method was trained on all the other tasks"),
    "cross_domain": ("Across domains", "each cross-task method was trained on the tasks listed under each table "
                                       "(another domain with the same labels)"),
}

Cell = dict[int, float]  # seed -> test accuracy (seed -1: a run with no seed, e.g. the fixed prompt)


def is_heldout(config: Any) -> bool:
    """True for a held-out-task job (``kind: heldout``; rows recorded before kinds say ``evaluation: heldout``)."""
    return isinstance(config, dict) and (config.get("kind") == HELDOUT or config.get("evaluation") == HELDOUT)


def task_kind(task: str) -> str:
    return "related (sentiment)" if task in SENTIMENT_TASKS else "unrelated"


def _text(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    std = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{mean:.1f}{std} (n={len(values)})"


def _order(labels: dict[str, tuple[str, bool]]) -> list[str]:
    """Fixed prompt first, then single-task methods (no training tasks), then cross-task methods."""
    rank = {lab: 0 if method == FIXED else (1 if single else 2) for lab, (method, single) in labels.items()}
    return sorted(labels, key=lambda lab: rank[lab])  # stable: first appearance within a rank


def _table(labels: list[str], shots: list[int], cells: dict[tuple[str, int], tuple[float, str]]) -> list[str]:
    """labels x K of (mean, text); the best mean per column in bold; rows with no cell left out."""
    best = {k: max((cells[(lab, k)][0] for lab in labels if (lab, k) in cells), default=None) for k in shots}
    lines = ["| method | " + " | ".join(f"K = {k}" for k in shots) + " |", "|---|" + "---:|" * len(shots)]
    for lab in labels:
        if not any((lab, k) in cells for k in shots):
            continue
        row = []
        for k in shots:
            if (lab, k) not in cells:
                row.append("–")
                continue
            mean, text = cells[(lab, k)]
            row.append(f"**{text}**" if mean == best[k] else text)
        lines.append(f"| {lab} | " + " | ".join(row) + " |")
    return lines


def _average(per_task: list[Cell]) -> tuple[float, str]:
    """Mean over seeds of the per-seed average over tasks when all tasks share seeds, else the
    mean of task means (marked †, no ±)."""
    seeds = set.intersection(*(set(c) for c in per_task))
    if seeds:
        by_seed = [statistics.mean(c[s] for c in per_task) for s in sorted(seeds)]
        return statistics.mean(by_seed), _text(by_seed)
    mean = statistics.mean(statistics.mean(c.values()) for c in per_task)
    return mean, f"{100 * mean:.1f} †"


def _suite_lines(suite: str, rows: list[dict[str, Any]]) -> list[str]:
    cells: dict[str, dict[tuple[str, int], Cell]] = defaultdict(lambda: defaultdict(dict))
    labels: dict[str, tuple[str, bool]] = {}
    trained_on: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    protocols = set()
    for r in rows:
        c = r["config"]
        task = str(c.get("heldout_task", r["task"]))
        # what this row's prompt was trained on (prompt transfer: its one source task, which the result names)
        train_tasks = tuple((r["result"] or {}).get("train_tasks") or c.get("train_tasks") or ())
        labels.setdefault(r["label"], (r["method"], not train_tasks))
        cells[task][(r["label"], int(r["shots"]))][int(r["seed"])] = float(r["result"]["test_accuracy"])
        if train_tasks:
            trained_on[task].add(train_tasks)
        protocols.add(str(c.get("protocol", "")))
    order = _order(labels)
    shots = sorted({k for task_cells in cells.values() for _, k in task_cells})
    title, how = _PROTOCOLS.get(next(iter(protocols)) if len(protocols) == 1 else "",
                                ("Held-out tasks", "each cross-task method was trained on the tasks listed under "
                                                   "each table"))
    lines = [f"### {title} (suite `{suite}`)", "",
             f"Held out: {', '.join(sorted(cells))}. {how[0].upper() + how[1:]}, then adapted to the held-out "
             "task with K examples per class (K = 0: none, the trained prompt or description alone). "
             "`prompt_tuning_single` is trained on those K examples alone; the fixed prompt is not trained.", ""]
    for task in sorted(cells):
        lines += [f"#### {task}: {task_kind(task)}", ""]
        if trained_on[task]:
            lines += ["Cross-task methods trained on: " + "; ".join(", ".join(t) for t in sorted(trained_on[task])) +
                      ".", ""]
        shown = {key: (statistics.mean(v.values()), _text(list(v.values()))) for key, v in cells[task].items()}
        lines += [*_table(order, shots, shown), ""]
    compared = {key for task_cells in cells.values() for key in task_cells}
    complete = [t for t in sorted(cells) if compared <= set(cells[t])]
    partial = [t for t in sorted(cells) if t not in complete]
    if len(cells) > 1:
        lines += ["#### Average over held-out tasks", ""]
        if len(complete) < 2:
            lines += [f"Fewer than two held-out tasks have every compared cell (incomplete: {', '.join(partial)}); "
                      "no average.", ""]
        else:
            averaged = {key: _average([cells[t][key] for t in complete]) for key in compared}
            lines += [f"Over {', '.join(complete)}: the tasks where every compared cell exists"
                      + (f" (left out, cells missing: {', '.join(partial)})" if partial else "")
                      + ". Mean over seeds of the per-seed average over these tasks, n = seeds that every task has; "
                        "† = no common seed, mean of the task means.", "", *_table(order, shots, averaged), ""]
    return lines


def heldout_section(rows: list[dict[str, Any]], backbone: str | None = None) -> list[str]:
    """The report's section 2 from done held-out store rows (config and result decoded)."""
    rows = [r for r in rows if is_heldout(r["config"]) and r.get("result")
            and r["result"].get("test_accuracy") is not None]
    head = "## 2. Generalisation to unseen tasks" + (f" ({backbone})" if backbone and rows else "")
    if not rows:
        return [head, "", NOTHING, ""]
    by_suite: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_suite[r["suite"]].append(r)
    lines = [head, "",
             "Cross-task methods evaluated on tasks that none of their training saw, beside the fixed hand-written "
             "prompt and single-task prompt tuning on the same task, few-shot split and test subset. Test accuracy "
             "in %, mean ± std over seeds (n = runs); best mean per column in bold. Jobs of the held-out-task "
             "suites (`kind: heldout`).", ""]
    for suite, mine in by_suite.items():
        lines += _suite_lines(suite, mine)
    return lines
