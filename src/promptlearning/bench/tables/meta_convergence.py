"""A meta-learned start against the method's own starts (``meta_convergence_sweep.md`` and its PNG).

The rows are held-out-task jobs with ``adapt: prompt`` (:mod:`promptlearning.bench.kinds.heldout_task`):
per (held-out task, seed, K) one row per start, each with its dev curve. Over the units that
have every start: test accuracy against K, dev accuracy at step 0, and the steps each start
needs to reach the best dev accuracy the reference start (entry option ``reference``, default
``random``) reaches in the whole run. Starts appear in the order of the suite's methods.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from promptlearning.bench.heldout import SENTIMENT_TASKS
from promptlearning.bench.kinds import kind_of
from promptlearning.bench.tables import machine_text
from promptlearning.errors import ConfigError

OPTIONS = ("reference",)
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")

Cell = dict[tuple[str, int, int, str], dict[str, Any]]  # (task, seed, K, start) -> the row's result


def _count(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def steps_to(curve: list[list[float]], level: float) -> int | None:
    """First evaluated step whose dev accuracy reaches ``level`` (None: never within the run)."""
    return next((int(step) for step, acc in curve if acc >= level - 1e-9), None)


def _describe(m: dict[str, Any]) -> str:
    return (f"{m.get('gpu') or m.get('cpu') or '?'}, {m.get('cpu_cores', '?')} cores, torch {m.get('torch', '?')}, "
            f"{m.get('torch_threads', '?')} torch thread(s)")


def _setting(rows: list[dict[str, Any]]) -> str:
    """How the meta-learned start was made, from the config of its rows."""
    c = rows[0]["config"]
    algorithm = str((c.get("meta") or {}).get("meta_algorithm", "meta-learning"))
    by = {str(r["result"].get("start_trained_by")) for r in rows}
    made = f"that `{by.pop()}` trained" if len(by) == 1 and "None" not in by else "trained"
    inner = (c.get("meta") or {}).get("inner_steps")
    return (f"Each held-out task's meta start is the {algorithm.capitalize()} prompt {made} on the "
            f"{_count(len(c['train_tasks']))} other tasks with the same seed ({c['train']['max_steps']} outer steps"
            + (f", {inner} inner steps" if inner is not None else "") + ").")


def write(rows: list[dict[str, Any]], out: Path, entry: dict[str, Any], suite: str) -> list[Path]:
    mine = [r for r in rows if r["suite"] == suite and kind_of(r["config"]) == "heldout" and r["result"]
            and r["config"].get("adapt") == "prompt"]
    if not mine:
        out.write_text(f"# {suite}: no adaptation-curve rows in this store yet\n")
        return [out]
    starts = list(dict.fromkeys(r["label"] for r in mine))
    meta = [r for r in mine if r["config"]["trained_on"] != "target"]
    reference = str(entry.get("reference", "random"))
    if reference not in starts:
        raise ConfigError(f"report entry of suite {suite}: reference {reference!r} is not one of its starts; "
                          f"choose one of: {', '.join(starts)}")
    cell: Cell = {(r["config"]["heldout_task"], int(r["seed"]), int(r["shots"]), r["label"]): r["result"] for r in mine}
    units = sorted({(t, s, k) for t, s, k, _ in cell if all((t, s, k, i) in cell for i in starts)})
    ks = sorted({k for _, _, k in units})
    tasks = sorted({t for t, _, _ in units})
    seeds = sorted({s for _, s, _ in units})
    c = (meta or mine)[0]["config"]
    t = c["train"]
    command = str(entry.get("produced_by") or f"promptlearning bench benchmarks/suites/{suite}.yaml")
    lines = ["# Meta-learned start against vocabulary and random starts: adaptation steps and K", "",
             f"Machine: {machine_text(mine, entry, _describe)}.", f"Command: `{command}`", "",
             (_setting(meta) + " " if meta else "")
             + f"Adaptation: {c['method'].replace('_', ' ')}, {c['method_options'].get('num_tokens', '?')} tokens, "
             f"{c['head']['kind'].replace('_', '-')} head, {t['adapt_steps']} steps, dev accuracy at step 0 and every "
             f"{t['eval_every']} steps (dev has K examples per class), best-on-dev kept, test on a fixed "
             f"{c['data']['max_test']}-example subset.",
             f"Complete units (task × seed × K with all {_count(len(starts))} starts): {len(units)}; tasks "
             f"{', '.join(tasks)} (sentiment: {', '.join(x for x in tasks if x in SENTIMENT_TASKS) or 'none'}); seeds "
             f"{', '.join(map(str, seeds))}.", "",
             "## Test accuracy against K (mean over tasks and seeds, %)", "",
             "| start | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for start in starts:
        vals = []
        for k in ks:
            xs = [100 * cell[(task, s, kk, start)]["test_accuracy"] for task, s, kk in units if kk == k]
            vals.append(f"{statistics.mean(xs):.1f} (n={len(xs)})" if xs else "–")
        lines.append(f"| {start} | " + " | ".join(vals) + " |")
    lines += ["", "## Convergence", "",
              f"Dev accuracy at step 0, and the steps each start needs to reach the best dev accuracy the {reference} "
              "start reaches in the whole run (mean over the units that reach it; 'reached' counts them).", "",
              f"| K | start | dev at step 0 | steps to the {reference} start's best | reached |",
              "|---:|---|---:|---:|---:|"]
    for k in ks:
        here = [(task, s) for task, s, kk in units if kk == k]
        for start in starts:
            first = [100 * cell[(task, s, k, start)]["curve"][0][1] for task, s in here]
            need = [steps_to(cell[(task, s, k, start)]["curve"],
                             max(a for _, a in cell[(task, s, k, reference)]["curve"])) for task, s in here]
            got = [n for n in need if n is not None]
            lines.append(f"| {k} | {start} | {statistics.mean(first):.1f} | "
                         f"{statistics.mean(got) if got else float('nan'):.1f} | {len(got)}/{len(need)} |")
    png = out.with_suffix(".png")
    if plot(cell, starts, units, ks, png):
        lines += ["", f"![dev accuracy against steps, test accuracy against K]({png.name})"]
    lines += ["", "Dev sets are small (K examples per class), so single curves are noisy; read the means."]
    out.write_text("\n".join(lines) + "\n")
    return [out] + ([png] if png.is_file() and units else [])


def plot(cell: Cell, starts: list[str], units: list[tuple[str, int, int]], ks: list[int], path: Path) -> bool:
    """Mean dev curve per start at each K, and test accuracy against K."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not units:
        return False
    fig, axes = plt.subplots(1, len(ks) + 1, figsize=(4.2 * (len(ks) + 1), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=False):
        here = [(t, s) for t, s, kk in units if kk == k]
        for start in starts:
            steps = [p[0] for p in cell[(here[0][0], here[0][1], k, start)]["curve"]]
            mean = [statistics.mean(100 * cell[(t, s, k, start)]["curve"][i][1] for t, s in here)
                    for i in range(len(steps))]
            ax.plot(steps, mean, marker=".", label=start)
        ax.set_title(f"K={k}: mean dev accuracy ({len(here)} units)")
        ax.set_xlabel("adaptation steps")
        ax.set_ylabel("dev accuracy (%)")
        ax.legend(fontsize=8)
    ax = axes[0][-1]
    for start in starts:
        ax.plot(ks, [statistics.mean(100 * cell[(t, s, k, start)]["test_accuracy"] for t, s, kk in units if kk == k)
                     for k in ks], marker="o", label=start)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_title("test accuracy against K")
    ax.set_xlabel("K (examples per class)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
