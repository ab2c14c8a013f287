"""Trivia QA generation on SmolLM2-135M: the two fixed-prompt baselines against trained prompts and fine-tuning.

Every row is one `promptlearning train --task trivia_qa --backbone smollm2-135m ...` run (through
:func:`promptlearning.runs.generation.run_generation`, the function the CLI calls), in one process so the
backbone loads once. Rows are written to ``generation_trivia.json`` as each finishes and skipped when the
script runs again (resumable); ``generation_trivia.md`` is rebuilt from the JSON every time.

    PYTHONPATH=src python benchmarks/generation_trivia.py [--seeds 13] [--steps 40] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

#: (row name, method, method options, extra ExperimentConfig values): the baselines first (cheapest)
ROWS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("no prompt (bare question)", "fixed_prompt", {}, {"template": "{text_a}"}),
    ("hand-written prompt, 0 demonstrations", "fixed_prompt", {}, {}),
    ("hand-written prompt, 8 demonstrations", "fixed_prompt", {}, {"demonstrations": 8}),
    # prefix tuning's defaults until the ninth session: they wreck the LM's next-token scores at once (dev loss
    # above the uniform 10.8 nats); a prefix that starts near silent, trained slower, does not
    ("prefix tuning (10 prefix tokens, old defaults: init_std 0.5, lr 1e-2)", "prefix_tuning",
     {"num_tokens": 10, "init_std": 0.5}, {"lr": 1e-2}),
    ("prefix tuning (10 prefix tokens, defaults: init_std 0.05, lr 3e-3)", "prefix_tuning", {"num_tokens": 10}, {}),
    ("prefix tuning (10 prefix tokens, init_std 0.02, lr 3e-3)", "prefix_tuning", {"num_tokens": 10, "init_std": 0.02},
     {"lr": 3e-3}),
    ("prompt tuning (10 prompt tokens)", "prompt_tuning", {"num_tokens": 10}, {}),
    ("fine-tuning (every weight)", "finetune", {}, {}),
]


def run_row(name: str, method: str, options: dict[str, Any], extra: dict[str, Any], seed: int, args: argparse.Namespace,
            backbone: Any) -> dict[str, Any]:
    from promptlearning.data.loading import DataConfig
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.generation import GENERATION_MAX_LENGTH, run_generation
    from promptlearning.runs.single_task import ExperimentConfig
    from promptlearning.training import TrainConfig

    extra = dict(extra)
    lr = extra.pop("lr", None)  # a training option of the row, not an ExperimentConfig one
    cfg = ExperimentConfig(data=DataConfig(task="trivia_qa", shots=args.shots, dev_shots=args.dev_shots, data_seed=seed),
                           backbone="smollm2-135m", method=method, method_options=dict(options),
                           head=HeadConfig(kind="language_modeling"), max_length=GENERATION_MAX_LENGTH,
                           train=TrainConfig(max_steps=args.steps, eval_every=args.eval_every, batch_size=args.batch_size,
                                             lr=lr, seed=seed, quiet=True),
                           **extra)
    started = time.process_time()
    result = run_generation(cfg, backbone=backbone, baseline=False, log=lambda line: print(f"  {line}", flush=True))
    test = result["test"]
    return {"row": name, "seed": seed, "method": method, "options": options, **extra, **({"lr": lr} if lr else {}),
            "exact_match": test["exact_match"], "token_f1": test["token_f1"], "rouge_l": test["rouge_l"],
            "bleu": test["bleu"], "test_pairs": test["n"], "dev_token_accuracy": result["dev_token_accuracy"],
            "trainable_params": result["trainable_params"], "steps": result["steps"], "best_step": result["best_step"],
            "batch_size": args.batch_size,
            "cpu_seconds": round(time.process_time() - started, 1), "wall_seconds": round(result["wall_seconds"], 1),
            "load_average": round(os.getloadavg()[0], 1),
            "examples": test["examples"][:3]}


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    by_row: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_row.setdefault(r["row"], []).append(r)
    lines = ["| run | seeds | exact match | token F1 | ROUGE-L | BLEU | trainable params | steps | CPU s (per seed) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, *_ in ROWS:
        got = by_row.get(name)
        if not got:
            lines.append(f"| {name} | 0 | not run (no time left on the shared machine) | | | | | | |")
            continue

        def mean(key: str, rs: list[dict[str, Any]] = got) -> float:
            return sum(r[key] for r in rs) / len(rs)

        def cell(key: str, digits: int, rs: list[dict[str, Any]] = got) -> str:
            spread = f" ± {statistics.stdev(r[key] for r in rs):.{digits}f}" if len(rs) > 1 else ""
            return f"{mean(key):.{digits}f}{spread}"

        seeds = ", ".join(str(r["seed"]) for r in sorted(got, key=lambda r: r["seed"]))
        lines.append(f"| {name} | {len(got)} ({seeds}) | {cell('exact_match', 3)} | {cell('token_f1', 3)} | "
                     f"{cell('rouge_l', 3)} | {cell('bleu', 1)} | {got[0]['trainable_params']:,} | "
                     f"{got[0]['steps']} | {mean('cpu_seconds'):.0f} |")
    return "\n".join(lines)


def write_report(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> None:
    """Rebuild generation_trivia.md from the rows; ``generation_trivia.notes.md`` (what the numbers say, written
    by hand) is appended when it exists, so a rerun keeps it."""
    examples = "\n".join(f"- {r['row']} (seed {r['seed']}): " + "; ".join(
        f"{e['input'][:50]!r} -> {e['answer']!r} (gold {e['target']!r})" for e in r["examples"]) for r in rows)
    commands = list(dict.fromkeys(r.get("command", command) for r in rows)) or [command]
    seeds = sorted({r["seed"] for r in rows} | set(args.seeds))
    per_row = {n: sum(r["row"] == n for r in rows) for n, *_ in ROWS}
    counts = sorted(set(per_row.values()))
    notes = out / "generation_trivia.notes.md"
    text = f"""# Trivia QA generation on SmolLM2-135M (issue 19, part 2)

Task `trivia_qa` (chatterbot-corpus english/trivia.yml: 182 pool pairs, fixed test set of 78 pairs),
K = {args.shots} training pairs and {args.dev_shots} dev pairs drawn with the data seed, greedy answers (the
first line written, at most the longest train/dev target's tokens + 8), scored by SQuAD-normalised exact
match, token F1, ROUGE-L (`rouge-score`) and corpus BLEU (`sacrebleu`, 0-100). Trained runs: {args.steps}
steps, batch {args.batch_size}, each method's default learning rate unless the row names one, the best dev step
(teacher-forced target-token accuracy, checked every {args.eval_every} steps) kept. Data seed = training seed =
each seed listed per row (of {', '.join(map(str, seeds))}); scores are the mean ± std over those seeds.

{table(rows, args)}

Commands (each from a frozen copy of the code, `nice -n 10`; a rerun skips the rows done):

""" + "\n".join(f"    {c}" for c in commands) + f"""

Machine: a 2-core CPU shared with other engineers' jobs ({load_text(rows)}),
torch {torch_version()} CPU, Python {platform.python_version()}; CPU seconds are this process's own (the
wall time of each row, in the JSON, was several times more).

Reduced from the issue's request (3 seeds; the issue names no step count or K): {args.steps} steps, K = {args.shots},
{args.dev_shots} dev pairs, 8 in-context demonstrations rather than K; seeds per row: {' or '.join(map(str, counts))}
(the table's seeds column). With 78 test pairs one answer is 1.3 points of exact match: differences of a few
points are noise.

First answers of each run:

{examples}
""" + (f"\n{notes.read_text()}" if notes.is_file() else "")
    (out / "generation_trivia.md").write_text(text)


def load_text(rows: list[dict[str, Any]]) -> str:
    """The 1-minute load averages recorded as the rows finished."""
    loads = [r["load_average"] for r in rows if "load_average" in r]
    if not loads:
        return "load average not recorded"
    return f"1-minute load average {min(loads):g}-{max(loads):g} as rows finished"


def commit() -> str:
    """The commit of the checkout the script runs in (freeze the code at it before a long run)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def torch_version() -> str:
    import torch

    return str(torch.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shots", type=int, default=32)
    parser.add_argument("--dev-shots", type=int, default=8)
    parser.add_argument("--only", nargs="*", default=None, choices=[r[0] for r in ROWS],
                        help="row names to run, in this order (default: all, in table order)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "generation_trivia.json"
    rows: list[dict[str, Any]] = json.loads(store.read_text()) if store.is_file() else []
    command = ("PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/generation_trivia.py --seeds "
               f"{' '.join(map(str, args.seeds))} --steps {args.steps} --batch-size {args.batch_size} --shots {args.shots} "
               f"--dev-shots {args.dev_shots}" + (f" --only {' '.join(repr(n) for n in args.only)}" if args.only else "")
               + f"   # commit {commit()}")
    write_report(out, rows, args, command)
    from promptlearning.backbones import shared_backbone

    backbone = shared_backbone("smollm2-135m")
    chosen = [next(r for r in ROWS if r[0] == n) for n in args.only] if args.only else ROWS  # in the order given
    for seed in args.seeds:
        for name, method, options, extra in chosen:
            if any(r["row"] == name and r["seed"] == seed for r in rows):
                continue
            print(f"{name}, seed {seed}", flush=True)
            rows.append({**run_row(name, method, options, extra, seed, args, backbone), "command": command})
            store.write_text(json.dumps(rows, indent=1) + "\n")
            write_report(out, rows, args, command)
            print(f"  done: exact match {rows[-1]['exact_match']:.3f}, ROUGE-L {rows[-1]['rouge_l']:.3f}, "
                  f"{rows[-1]['cpu_seconds']} CPU s", flush=True)


if __name__ == "__main__":
    main()
