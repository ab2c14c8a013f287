"""Convergence of a meta-learned prompt start against adaptation steps and against K, over
held-out tasks and seeds.

The meta-learned start of each (held-out task, seed) is the Reptile prompt that
``meta_loto.py`` trained on the eight other registered tasks with that seed
(``benchmarks/results/runs/<task>_meta_init_reptile_<seed>/best``), so no task is meta-trained
on its own data; units without one are skipped and listed. From that start, from sampled
vocabulary embeddings and from random vectors, prompt tuning adapts on K examples per class
with dev accuracy every few steps. Rows go to OUT.jsonl as they finish (a rerun skips them);
OUT.md and OUT.png are rebuilt from all rows.

    python benchmarks/meta_convergence_sweep.py --tasks cr,tweets,hedge,subj --seeds 13,21 --shots 4,8,16 \\
        --out benchmarks/results/meta_convergence_sweep
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from meta_convergence import adaptation_curve

from promptlearning.bench.heldout import SENTIMENT_TASKS
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import shared_backbone

INITS = ("meta (reptile)", "vocab", "random")


def reptile_start(runs: Path, task: str, seed: int) -> torch.Tensor | None:
    path = runs / f"{task}_meta_init_reptile_{seed}" / "best"
    if not (path / "adapter_config.json").is_file():
        return None
    return PromptModel.from_pretrained(path).method.prompt.detach().clone()


def steps_to(curve: list[list[float]], level: float) -> int | None:
    """First evaluated step whose dev accuracy reaches ``level`` (None: never within the run)."""
    return next((int(step) for step, acc in curve if acc >= level - 1e-9), None)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows_path = out.with_suffix(".jsonl")
    rows = [json.loads(x) for x in rows_path.read_text().splitlines() if x.strip()] if rows_path.is_file() else []
    done = {(r["task"], r["seed"], r["K"], r["init"]) for r in rows}
    backbone = shared_backbone("minilm-l6")
    for seed in [int(s) for s in args.seeds.split(",")]:
        for task in args.tasks.split(","):
            start = reptile_start(Path(args.runs), task, seed)
            if start is None:
                print(f"skip {task} seed {seed}: no Reptile start under {args.runs} (run meta_loto.py first)")
                continue
            for k in [int(x) for x in args.shots.split(",")]:
                for init in INITS:
                    if (task, seed, k, init) in done:
                        continue
                    r = adaptation_curve(backbone, task, k, seed, init, start if init.startswith("meta") else None,
                                         steps=args.steps, eval_every=args.eval_every, max_test=args.max_test)
                    row = {"task": task, "seed": seed, "K": k, **r}
                    rows.append(row)
                    with rows_path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"{task} seed {seed} K={k} {init}: test {r['test_accuracy']:.3f} "
                          f"({r['adapt_seconds']:.0f} s)", flush=True)
    return rows


def write_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    out = Path(args.out)
    cell = {(r["task"], r["seed"], r["K"], r["init"]): r for r in rows}
    units = sorted({(t, s, k) for t, s, k, _ in cell if all((t, s, k, i) in cell for i in INITS)})
    ks = sorted({k for _, _, k in units})
    tasks = sorted({t for t, _, _ in units})
    seeds = sorted({s for _, s, _ in units})
    lines = ["# Meta-learned start against vocabulary and random starts: adaptation steps and K", "",
             f"Machine: {platform.machine()} CPU, 2 cores, torch {torch.__version__}, one thread, another benchmark "
             "process beside it.",
             f"Command: `python benchmarks/meta_convergence_sweep.py --tasks {args.tasks} --seeds {args.seeds} "
             f"--shots {args.shots} --steps {args.steps} --eval-every {args.eval_every} --max-test {args.max_test}`",
             "", "Each held-out task's meta start is the Reptile prompt that `meta_loto.py` trained on the eight other "
             "tasks with the same seed (100 outer steps, 3 inner steps). Adaptation: prompt tuning, 20 tokens, "
             f"label-description head, {args.steps} steps, dev accuracy at step 0 and every {args.eval_every} steps "
             f"(dev has K examples per class), best-on-dev kept, test on a fixed {args.max_test}-example subset.",
             f"Complete units (task × seed × K with all three starts): {len(units)}; tasks {', '.join(tasks)} "
             f"(sentiment: {', '.join(t for t in tasks if t in SENTIMENT_TASKS) or 'none'}); seeds "
             f"{', '.join(map(str, seeds))}.", "",
             "## Test accuracy against K (mean over tasks and seeds, %)", "",
             "| start | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for init in INITS:
        vals = []
        for k in ks:
            xs = [100 * cell[(t, s, kk, init)]["test_accuracy"] for t, s, kk in units if kk == k]
            vals.append(f"{statistics.mean(xs):.1f} (n={len(xs)})" if xs else "–")
        lines.append(f"| {init} | " + " | ".join(vals) + " |")
    lines += ["", "## Convergence", "",
              "Dev accuracy at step 0, and the steps each start needs to reach the best dev accuracy the random start "
              "reaches in the whole run (mean over the units that reach it; 'reached' counts them).", "",
              "| K | start | dev at step 0 | steps to the random start's best | reached |", "|---:|---|---:|---:|---:|"]
    for k in ks:
        mine = [(t, s) for t, s, kk in units if kk == k]
        for init in INITS:
            first = [100 * cell[(t, s, k, init)]["curve"][0][1] for t, s in mine]
            need = [steps_to(cell[(t, s, k, init)]["curve"],
                             max(a for _, a in cell[(t, s, k, "random")]["curve"])) for t, s in mine]
            got = [n for n in need if n is not None]
            lines.append(f"| {k} | {init} | {statistics.mean(first):.1f} | "
                         f"{statistics.mean(got) if got else float('nan'):.1f} | {len(got)}/{len(need)} |")
    if plot(rows, units, ks, out.with_suffix(".png")):
        lines += ["", f"![dev accuracy against steps, test accuracy against K]({out.with_suffix('.png').name})"]
    lines += ["", "Dev sets are small (K examples per class), so single curves are noisy; read the means."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


def plot(rows: list[dict[str, Any]], units: list[tuple[str, int, int]], ks: list[int], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not units:
        return False
    cell = {(r["task"], r["seed"], r["K"], r["init"]): r for r in rows}
    fig, axes = plt.subplots(1, len(ks) + 1, figsize=(4.2 * (len(ks) + 1), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=False):
        mine = [(t, s) for t, s, kk in units if kk == k]
        for init in INITS:
            steps = [p[0] for p in cell[(mine[0][0], mine[0][1], k, init)]["curve"]]
            mean = [statistics.mean(100 * cell[(t, s, k, init)]["curve"][i][1] for t, s in mine)
                    for i in range(len(steps))]
            ax.plot(steps, mean, marker=".", label=init)
        ax.set_title(f"K={k}: mean dev accuracy ({len(mine)} units)")
        ax.set_xlabel("adaptation steps")
        ax.set_ylabel("dev accuracy (%)")
        ax.legend(fontsize=8)
    ax = axes[0][-1]
    for init in INITS:
        ax.plot(ks, [statistics.mean(100 * cell[(t, s, k, init)]["test_accuracy"] for t, s, kk in units if kk == k)
                     for k in ks], marker="o", label=init)
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="cr,tweets,hedge,subj")
    p.add_argument("--seeds", default="13")
    p.add_argument("--shots", default="4,8,16")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--max-test", type=int, default=300)
    p.add_argument("--runs", default="benchmarks/results/runs", help="where meta_loto.py kept its trained models")
    p.add_argument("--out", default="benchmarks/results/meta_convergence_sweep")
    p.add_argument("--report-only", action="store_true", help="only rebuild OUT.md and OUT.png from OUT.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [] if args.report_only else run(args)
    if args.report_only:
        path = Path(args.out).with_suffix(".jsonl")
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    write_report(rows, args)


if __name__ == "__main__":
    main()
