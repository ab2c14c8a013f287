"""The held-out-task summary (``meta_loto.md``, ``meta_cross_domain.md``) from a heldout suite's rows.

Per held-out task, methods x K; then, over the (task, seed) units that have every method at
every K: averages by task group, the meta methods paired against plain multi-task training
and prompt transfer, the K = 4 cross-task against K = 16 single-task aim, the spread across
seeds and each method's overhead. Full fine-tuning at K = 16 joins the table from the
experiment rows of the same store (same splits), as it always did.
"""

from __future__ import annotations

import platform
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from promptlearning.bench.heldout import SENTIMENT_TASKS as SENTIMENT
from promptlearning.bench.kinds import kind_of
from promptlearning.bench.tables import machine_text

TRANSFER = "prompt_transfer"
CROSS_TASK = ("multitask_prompt", "hyperprompt", "meta_init_reptile")


@dataclass
class Settings:
    """What the summary's prose states, read from the rows' configs."""

    cross_domain: bool
    steps: int
    adapt_steps: int
    single_steps: int
    max_test: int
    shots: list[int]
    command: str
    machine: str
    backbone: str = "minilm-l6"


#: how the published tables name their backbone (meta_loto.md and meta_cross_domain.md said MiniLM-L6)
BACKBONE_NAMES = {"minilm-l6": "MiniLM-L6", "mpnet-base": "all-mpnet-base-v2"}


def _describe(m: dict[str, Any]) -> str:
    """A machine a row recorded ({}: the one building the table, for rows that recorded none)."""
    threads = m.get("torch_threads", torch.get_num_threads())
    return (f"{m.get('gpu') or m.get('cpu') or platform.machine() + ' CPU'}, torch {m.get('torch', torch.__version__)}, "
            f"{'one thread' if threads == 1 else f'{threads} threads'}")


def legacy_row(r: dict[str, Any]) -> dict[str, Any]:
    """A store row in the shape the summary reads (target, method = label, K, seed, accuracy, extras)."""
    res = dict(r["result"])
    return {"target": r["config"]["heldout_task"], "method": r["label"], "K": int(r["shots"]),
            "seed": None if r["seed"] < 0 else int(r["seed"]), "accuracy": res.pop("test_accuracy"), **res}


def write(rows: list[dict[str, Any]], out: Path, entry: dict[str, Any], suite: str) -> list[Path]:
    mine = [r for r in rows if r["suite"] == suite and kind_of(r["config"]) == "heldout" and r["result"]]
    if not mine:
        out.write_text(f"# {suite}: no held-out-task rows in this store yet\n")
        return [out]
    configs = [r["config"] for r in mine]
    trained = [c for c in configs if c["trained_on"] in ("train_tasks",)]
    single = [c for c in configs if c["trained_on"] == "target"]
    adapted = [c for c in configs if c["trained_on"] in ("train_tasks", "nearest_task")]
    args = Settings(cross_domain=configs[0].get("protocol") == "cross_domain",
                    steps=trained[0]["train"]["max_steps"] if trained else 0,
                    adapt_steps=adapted[0]["train"]["adapt_steps"] if adapted else 0,
                    single_steps=single[0]["train"]["max_steps"] if single else 0,
                    max_test=configs[0]["data"]["max_test"], shots=sorted({int(r["shots"]) for r in mine}),
                    command=str(entry.get("produced_by") or f"promptlearning bench benchmarks/suites/{suite}.yaml"),
                    machine=machine_text(mine, entry, _describe, fallback=_describe({})),
                    backbone=str(configs[0].get("backbone") or "minilm-l6"))
    write_markdown([legacy_row(r) for r in mine], rows, out, args)
    return [out]


def write_markdown(rows: list[dict[str, Any]], store_rows: list[dict[str, Any]], md_path: Path,
                   args: Settings) -> None:
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in rows:
        cells[(r["target"], r["method"], r["K"])].append(100 * r["accuracy"])
    seeds_of: dict[str, set[int]] = defaultdict(set)  # the seeds each held-out task was run with
    for r in rows:
        if r["seed"] is not None:
            seeds_of[r["target"]].add(r["seed"])
    for r in store_rows:  # full fine-tuning at K=16 from the fewshot16 bench: same splits, classification head
        if (r["label"] == "finetune" and r["shots"] == 16 and r["result"] and kind_of(r["config"]) == "experiment"
                and r["seed"] in seeds_of.get(r["task"], set())):
            cells[(r["task"], "finetune (classification head)", 16)].append(100 * r["result"]["test_accuracy"])
    finetune_note = (" (fine-tuning rows: the fewshot16 bench's 500-example subset, same seeds)"
                     if any(m == "finetune (classification head)" for _, m, _ in cells) else "")
    targets = sorted({r["target"] for r in rows})
    methods = ["fixed_prompt", "prompt_tuning_single", TRANSFER, *CROSS_TASK, "finetune (classification head)"]
    ks = sorted({r["K"] for r in rows})
    lines = [f"# {'Cross-domain' if args.cross_domain else 'Leave-one-task-out'}: cross-task methods on unseen tasks", "",
             f"Machine: {args.machine}. Backbone {BACKBONE_NAMES.get(args.backbone, args.backbone)}, label-description "
             "head everywhere (no per-task weights).",
             f"Command: `{args.command}`", "",
             *(["Trained on mr and rt (movie reviews) only; cr, nyt and tweets share their labels but not their "
                "domain.", ""] if args.cross_domain else []),
             f"Cross-task training: {args.steps} steps, batch 8, 16 shots of every training task; adaptation: "
             f"{args.adapt_steps} steps on K shots per class (K=0: no adaptation). Single-task prompt tuning: "
             f"{args.single_steps} steps. Prompt transfer: the single-task prompt (K=16, {args.single_steps} steps, "
             "same seed) of the training task whose description encoding is nearest the held-out task's, adapted "
             "exactly like the cross-task methods. Test: a fixed random subset of "
             f"{args.max_test} examples{finetune_note}. "
             "Accuracy in %, mean ± std over seeds (n = number of seeds). Only the seeds and held-out tasks listed "
             "here were run.", "", *summary(rows, wanted_shots(args), args), ""]
    for target in targets:
        kind = "related (sentiment)" if target in SENTIMENT else "unrelated"
        lines += [f"## {target} ({kind})", "", "| method | " + " | ".join(f"K={k}" for k in ks) + " |",
                  "|---|" + "---:|" * len(ks)]
        for m in methods:
            vals = []
            for k in ks:
                xs = cells.get((target, m, k), [])
                if not xs:
                    vals.append("–")
                else:
                    t = torch.tensor(xs)
                    std = f" ± {t.std().item():.1f}" if len(xs) > 1 else ""
                    vals.append(f"{t.mean().item():.1f}{std} (n={len(xs)})")
            if any(v != "–" for v in vals):
                lines.append(f"| {m} | " + " | ".join(vals) + " |")
        lines.append("")
    md_path.write_text("\n".join(lines) + "\n")


def wanted_shots(args: Settings) -> list[int]:
    return list(args.shots)


def summary(rows: list[dict[str, Any]], ks: list[int], args: Settings) -> list[str]:
    """Coverage, averages over held-out tasks, paired meta-vs-baseline differences and the issue's aim,
    all from the (task, seed) units that have every method at every K, so no average mixes coverage."""
    acc = {(r["target"], r["method"], r["K"], r["seed"]): 100 * r["accuracy"] for r in rows}
    fixed = {r["target"]: 100 * r["accuracy"] for r in rows if r["method"] == "fixed_prompt"}
    compared = [m for m in (TRANSFER, *CROSS_TASK) if any(r["method"] == m for r in rows)]  # what the suite ran
    units = sorted({(r["target"], r["seed"]) for r in rows if r["seed"] is not None})
    complete = [(t, s) for t, s in units if t in fixed
                and all((t, m, k, s) in acc for m in compared for k in ks)
                and all((t, "prompt_tuning_single", k, s) in acc for k in ks if k > 0)]
    if not complete:
        return []
    by_task: dict[str, list[int]] = defaultdict(list)
    for t, s in complete:
        by_task[t].append(s)
    out = ["## Summary", "", "Complete held-out units (task: seeds): "
           + "; ".join(f"{t}: {', '.join(map(str, sorted(ss)))}" for t, ss in sorted(by_task.items()))
           + f" ({len(complete)} units). Every number below is over these units only.", ""]

    def value(method: str, t: str, k: int, s: int) -> float | None:
        if method == "fixed_prompt":
            return fixed[t] if k == 0 else None
        return acc.get((t, method, k, s))

    groups = [("all held-out tasks", complete), ("sentiment (related)", [u for u in complete if u[0] in SENTIMENT]),
              ("subj, hedge (unrelated)", [u for u in complete if u[0] not in SENTIMENT])]
    out += ["### Mean test accuracy over units", "",
            "| method | tasks | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|---|" + "---:|" * len(ks)]
    for name, group in groups:
        if not group:
            continue
        for m in ["fixed_prompt", "prompt_tuning_single", *compared]:
            vals = []
            for k in ks:
                xs = [v for t, s in group if (v := value(m, t, k, s)) is not None]
                vals.append(f"{sum(xs) / len(xs):.1f}" if xs else "–")
            out.append(f"| {m} | {name} ({len(group)}) | " + " | ".join(vals) + " |")
    metas = [m for m in ("hyperprompt", "meta_init_reptile") if m in compared]
    if metas:  # a suite without meta methods has nothing to pair
        out += ["", "### Meta methods against plain multi-task training and prompt transfer", "",
                "Paired on the same unit and K: mean difference in points ± std, and how often the meta method is "
                "higher / lower.", "", "| meta method | against | " + " | ".join(f"K={k}" for k in ks) + " |",
                "|---|---|" + "---:|" * len(ks)]
        for meta in metas:
            for base in (m for m in ("multitask_prompt", TRANSFER) if m in compared):
                vals = []
                for k in ks:
                    d = [acc[(t, meta, k, s)] - acc[(t, base, k, s)] for t, s in complete]
                    t_ = torch.tensor(d)
                    std = f" ± {t_.std().item():.1f}" if len(d) > 1 else ""
                    vals.append(f"{t_.mean().item():+.1f}{std} ({sum(x > 0 for x in d)}/{sum(x < 0 for x in d)})")
                out.append(f"| {meta} | {base} | " + " | ".join(vals) + " |")
    sentiment = [u for u in complete if u[0] in SENTIMENT]
    if 4 in ks and 16 in ks and sentiment:
        mean4 = {m: sum(acc[(t, m, 4, s)] for t, s in sentiment) / len(sentiment) for m in compared}
        best = max(mean4, key=lambda m: mean4[m])
        out += ["", "### Aim: K=4 cross-task against K=16 single-task on unseen sentiment tasks", "",
                f"The cross-task method with the best mean at K=4 over the sentiment units is **{best}** "
                f"({mean4[best]:.1f}; chosen on these same test numbers, so slightly optimistic). Per task, mean over "
                "its seeds:", "", f"| held-out task | seeds | {best} K=4 | single-task K=16 | difference |",
                "|---|---:|---:|---:|---:|"]
        matched = 0
        for t in sorted({u[0] for u in sentiment}):
            ss = sorted(s for u, s in sentiment if u == t)
            a = sum(acc[(t, best, 4, s)] for s in ss) / len(ss)
            b = sum(acc[(t, "prompt_tuning_single", 16, s)] for s in ss) / len(ss)
            matched += a >= b
            out.append(f"| {t} | {len(ss)} | {a:.1f} | {b:.1f} | {a - b:+.1f} |")
        out += ["", f"Matched or exceeded on {matched} of {len({u[0] for u in sentiment})} sentiment tasks."]
    return out + across_seeds(acc, fixed, complete, ks, compared) + overhead(rows, complete, ks)


def across_seeds(acc: dict[tuple[str, str, int, int], float], fixed: dict[str, float],
                 complete: list[tuple[str, int]], ks: list[int], compared: list[str]) -> list[str]:
    """Seed-to-seed spread of the task-averaged accuracy, over the seeds that cover every held-out task
    (a seed missing a task would move its average by the task's difficulty, not by the method)."""
    tasks = sorted({t for t, _ in complete})
    seeds = sorted(s for s in {s for _, s in complete} if all((t, s) in complete for t in tasks))
    if len(seeds) < 2:
        return []
    out = ["", "### Across seeds", "",
           f"Mean over all {len(tasks)} held-out tasks for each seed, then mean ± std over the {len(seeds)} seeds that "
           f"cover every task ({', '.join(map(str, seeds))}).", "",
           "| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for m in ["fixed_prompt", "prompt_tuning_single", *compared]:
        vals = []
        for k in ks:
            if m == "fixed_prompt":
                per_seed = [sum(fixed[t] for t in tasks) / len(tasks)] if k == 0 else []
            elif m == "prompt_tuning_single" and k == 0:
                per_seed = []
            else:
                per_seed = [sum(acc[(t, m, k, s)] for t in tasks) / len(tasks) for s in seeds]
            if not per_seed:
                vals.append("–")
            elif len(per_seed) == 1:
                vals.append(f"{per_seed[0]:.1f} (no training, same for every seed)")
            else:
                t_ = torch.tensor(per_seed)
                vals.append(f"{t_.mean().item():.1f} ± {t_.std().item():.1f}")
        out.append(f"| {m} | " + " | ".join(vals) + " |")
    return out


def overhead(rows: list[dict[str, Any]], complete: list[tuple[str, int]], ks: list[int]) -> list[str]:
    """What each method costs: trainable parameters, the one-off cross-task training, and the wall time
    to adapt to a new task at each K (medians over the complete units, so one slow run does not dominate)."""
    units = set(complete)
    mine = [r for r in rows if r["seed"] is not None and (r["target"], r["seed"]) in units]

    def median(xs: list[float]) -> str:  # statistics' median: torch's takes the lower middle of an even count
        return f"{statistics.median(xs):.0f}" if xs else "–"

    params = {r["method"]: r["trainable_params"] for r in mine if "trainable_params" in r}
    out = ["", "### Overhead", "",
           "Medians over the complete units, in seconds of wall time on the machine above (two benchmark processes "
           "shared its two cores). Adapting includes the test evaluation after it; single-task prompt tuning trains "
           "from scratch at each K, so its column is its whole cost. Prompt transfer's one-off cost is one single-task K=16 "
           "run (on its source task; the median of those runs is shown).", "",
           "| method | trainable parameters | one-off training s | " + " | ".join(f"adapt K={k} s" for k in ks if k > 0)
           + " |", "|---|---:|---:|" + "---:|" * len([k for k in ks if k > 0])]
    for m in (m for m in ["prompt_tuning_single", TRANSFER, *CROSS_TASK] if any(r["method"] == m for r in mine)):
        count = params.get(m, params.get(TRANSFER) if m == "prompt_tuning_single" else None)
        if m in CROSS_TASK:
            one_off = median([r["train_seconds"] for r in mine if r["method"] == m and r["K"] == 0])
        elif m == TRANSFER:
            one_off = median([r["seconds"] for r in mine if r["method"] == "prompt_tuning_single" and r["K"] == 16])
        else:
            one_off = "–"
        field = "seconds" if m == "prompt_tuning_single" else "adapt_seconds"
        adapt = [median([r[field] for r in mine if r["method"] == m and r["K"] == k and field in r]) for k in ks if k > 0]
        out.append(f"| {m} | {f'{count:,}' if count is not None else '–'} | {one_off} | " + " | ".join(adapt) + " |")
    return out
