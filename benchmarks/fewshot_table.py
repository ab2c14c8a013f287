"""First results table: each method on mr, cr, subj, hedge at 16 shots over the 5 LM-BFF seeds.

Every run goes through the same `run_experiment` as `promptlearning train`. Finished runs
are appended to a JSONL file and skipped on a re-run, so a killed sweep resumes.

    python benchmarks/fewshot_table.py                      # the published table
    python benchmarks/fewshot_table.py --tasks mr --seeds 13 --methods linear_probe --steps 20   # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from promptlearning import __version__
from promptlearning.data import LMBFF_SEEDS
from promptlearning.heads.base import HeadConfig
from promptlearning.runs.single_task import DataConfig, ExperimentConfig, run_experiment
from promptlearning.training import TrainConfig

METHODS = ("linear_probe", "prompt_tuning", "p_tuning_v2", "finetune")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="mr,cr,subj,hedge")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default=",".join(map(str, LMBFF_SEEDS)))
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--max-test", type=int, default=1000)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--head", default="classification", help="classification or verbalizer")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--out", default="benchmarks/results/fewshot16_classic")
    ap.add_argument("--title", default="Few-shot classic methods")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".jsonl")
    done = {(r["task"], r["method"], r["data_seed"]) for r in _read(raw)}
    jobs = [(t, m, int(s)) for t in args.tasks.split(",") for m in args.methods.split(",") for s in args.seeds.split(",")]
    for i, (task, method, seed) in enumerate(jobs, 1):
        if (task, method, seed) in done:
            continue
        cfg = ExperimentConfig(
            data=DataConfig(task=task, shots=args.shots, data_seed=seed, max_test=args.max_test),
            backbone=args.backbone, method=method, head=HeadConfig(kind=args.head), max_length=args.max_length,
            train=TrainConfig(max_steps=args.steps, eval_every=args.eval_every, seed=seed, quiet=True))
        started = time.perf_counter()
        result = run_experiment(cfg, log=lambda *a: None, baseline=False)
        result.pop("_model")
        with raw.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(f"[{i}/{len(jobs)}] {task} {method} seed {seed}: test {result['test_accuracy']:.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    write_table(_read(raw), out.with_suffix(".md"), args)


def _read(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def write_table(rows: list[dict], path: Path, args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    order = args.methods.split(",")
    methods = [m for m in order if any(r["method"] == m for r in rows)]
    lines = [f"# {args.title} ({args.shots} shots per class, {args.backbone})", "",
             f"Test accuracy, mean ± std over the LM-BFF data seeds (n per cell in brackets); "
             f"{args.steps} steps, batch 8, the method's default learning rate, best-on-dev checkpoint.", "",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} CPU threads; torch {torch.__version__}; "
             f"promptlearning {__version__}.", "",
             f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/fewshot_table.py "
             f"--tasks {args.tasks} --methods {args.methods} --steps {args.steps} --max-test {args.max_test} "
             f"--backbone {args.backbone} --head {args.head} --max-length {args.max_length} "
             f"--seeds {args.seeds} --out {args.out}`", "",
             "| method | " + " | ".join(tasks) + " | mean | trainable params | s/step |",
             "|---|" + "---:|" * (len(tasks) + 3)]
    for m in methods:
        cells, means = [], []
        for t in tasks:
            acc = [r["test_accuracy"] for r in rows if r["method"] == m and r["task"] == t]
            if acc:
                sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
                cells.append(f"{100 * statistics.mean(acc):.1f} ± {100 * sd:.1f} ({len(acc)})")
                means.append(statistics.mean(acc))
            else:
                cells.append("–")
        mine = [r for r in rows if r["method"] == m]
        params = statistics.median(r["trainable_params"] for r in mine)
        share = statistics.median(r["trainable_share"] for r in mine)
        sps = statistics.median(r["seconds_per_step"] for r in mine)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {100 * statistics.mean(means):.1f} | "
                     f"{int(params):,} ({100 * share:.2f}%) | {sps:.3f} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
