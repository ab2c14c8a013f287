"""Prompt search on SmolLM2-135M with the verbaliser: every strategy side by side, plus transfer.

For each (task, seed): the fixed hand-written prompt; evolutionary search, RL and black-box
CMA-ES, each under the same forward-pass budget and scored on the dev split; the hybrid (the
evolutionary search's best prompt turned into a soft template and tuned by gradient); and
gradient tuning of the same soft template from random and from sampled-vocabulary
initialisation. Then the best prompt found on the first task is evaluated, with no further
search, on the transfer tasks. Every row goes to a JSONL file as soon as it is done (a killed
run continues where it stopped); the Markdown table and the plot of best dev score against
forward passes are rebuilt from it.

    OMP_NUM_THREADS=1 python benchmarks/prompt_search.py --tasks mr,cr --seeds 13,21 \\
        --out benchmarks/results/prompt_search
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from promptlearning.backbones import load_backbone
from promptlearning.data import few_shot_split, load_task
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import DataConfig, ExperimentConfig, run_experiment, test_subset
from promptlearning.search.hybrid import hybrid_method_options
from promptlearning.search.runner import SearchRunConfig, run_search
from promptlearning.training import TrainConfig
from promptlearning.training.metrics import evaluate

HEAD = HeadConfig(kind="verbalizer")
SEARCHES = {"evolution": {"population": 8, "elite": 2},
            "rl": {"samples": 4, "num_words": 3},
            "cma_es": {"num_tokens": 5, "dim": 10, "popsize": 5}}
ORDER = ["fixed_prompt", "evolution", "rl", "cma_es", "hybrid", "soft_random", "soft_vocab"]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="mr,cr")
    p.add_argument("--seeds", default="13,21")
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--dev-shots", type=int, default=8)
    p.add_argument("--max-test", type=int, default=100)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--budget", type=int, default=280, help="forward passes per search")
    p.add_argument("--steps", type=int, default=8, help="gradient steps of the hybrid and the soft controls")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--transfer-to", default="cr,tweets")
    p.add_argument("--transfer-strategies", default="evolution")
    p.add_argument("--out", default="benchmarks/results/prompt_search")
    p.add_argument("--report-only", action="store_true", help="only rebuild OUT.md and OUT.png from OUT.jsonl")
    return p.parse_args()


def done_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows_file = out.with_suffix(".jsonl")
    rows = done_rows(rows_file)
    command = "OMP_NUM_THREADS=1 python benchmarks/prompt_search.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "report_only")
    if args.report_only:
        write_report(rows, out, args, command)
        return
    have = {(r["task"], r["seed"], r["method"]) for r in rows}
    backbone = load_backbone("smollm2-135m")
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]

    def record(row: dict[str, Any]) -> None:
        row["load_avg_1m"] = os.getloadavg()[0]
        rows.append(row)
        with rows_file.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{row['task']} seed {row['seed']} {row['method']}: test {row['test_accuracy']:.3f} "
              f"dev {row.get('dev_accuracy', float('nan')):.3f} forwards {row.get('forwards')} "
              f"({row['wall_seconds']:.0f} s)", flush=True)

    for task_name in tasks:
        task = load_task(task_name)
        for seed in seeds:
            data = DataConfig(task=task_name, shots=args.shots, dev_shots=args.dev_shots, data_seed=seed,
                              max_test=args.max_test)
            split = few_shot_split(task, args.shots, seed, args.dev_shots)
            test = test_subset(split.test, args.max_test)
            base = {"task": task_name, "seed": seed, "shots": args.shots}
            if (task_name, seed, "fixed_prompt") not in have:
                started = time.perf_counter()
                model = PromptModel.build(backbone, "fixed_prompt", task.labels, head=HEAD, task=task_name,
                                          max_length=args.max_length)
                dev = evaluate(model, model.encode(split.dev), 16)
                score = evaluate(model, model.encode(test), 16)
                record({**base, "method": "fixed_prompt", "prompt": model.template, "dev_accuracy": dev["accuracy"],
                        "test_accuracy": score["accuracy"], "forwards": 0, "wall_seconds": time.perf_counter() - started})
            for strategy, options in SEARCHES.items():
                if (task_name, seed, strategy) in have:
                    continue
                cfg = SearchRunConfig(strategy=strategy, options=dict(options), data=data, backbone="smollm2-135m",
                                      head=HEAD, budget=args.budget, seed=seed, max_length=args.max_length,
                                      batch_size=16, quiet=True, output_dir=f"runs/prompt_search/{task_name}-{seed}-{strategy}")
                journal = Path(str(cfg.output_dir)) / "search_config.json"
                result = run_search(cfg, resume=journal.is_file(), backbone=backbone, log=lambda _: None)
                result.pop("_model")
                record({**base, "method": strategy, "prompt": result["best_prompt"], "template": result["template"],
                        "dev_accuracy": result["dev_accuracy"], "test_accuracy": result["test_accuracy"],
                        "forwards": result["forwards"], "evaluations": result["evaluations"],
                        "curve": result["curve"], "top": result["top"][:5], "wall_seconds": result["wall_seconds"],
                        "converged": result.get("converged", False)})
            evo = next(r for r in rows if (r["task"], r["seed"], r["method"]) == (task_name, seed, "evolution"))
            for label, init in (("hybrid", "ids"), ("soft_random", "random"), ("soft_vocab", "vocab")):
                if (task_name, seed, label) in have:
                    continue
                soft, method_options = hybrid_method_options(evo["template"], backbone.tokenizer, init, seed=seed)
                exp = ExperimentConfig(data=data, backbone="smollm2-135m", method="p_tuning",
                                       method_options=method_options, head=HEAD, template=soft,
                                       max_length=args.max_length,
                                       # dev is scored at step 0 too, so best-on-dev can keep the starting prompt
                                       # (the discrete one, for the hybrid) when tuning does not help it
                                       train=TrainConfig(max_steps=args.steps, eval_every=max(1, args.steps // 2),
                                                         lr=args.lr, batch_size=8, eval_batch_size=16, seed=seed,
                                                         quiet=True, checkpoint_every=0, eval_at_start=True))
                result = run_experiment(exp, backbone=backbone, baseline=False, log=lambda _: None)
                result.pop("_model")
                n_dev = len(split.dev)
                record({**base, "method": label, "prompt": soft, "from_prompt": evo["template"],
                        "dev_accuracy": result["dev_accuracy"], "test_accuracy": result["test_accuracy"],
                        "forwards": result["steps"] * 8 + len(result["dev_curve"]) * n_dev,
                        "forward_backward": result["steps"] * 8, "wall_seconds": result["wall_seconds"],
                        "dev_curve": result["dev_curve"]})
    # transfer: the best prompt of the first task, no further search. The test subset does not depend on
    # the seed, so each target's hand-written prompt is evaluated once.
    source = tasks[0]
    handwritten: dict[str, float] = {}
    for seed in seeds:
        for strategy in args.transfer_strategies.split(","):
            found = next((r for r in rows if (r["task"], r["seed"], r["method"]) == (source, seed, strategy)), None)
            if found is None:
                continue
            for target in args.transfer_to.split(","):
                label = f"transfer:{source}>{target}:{strategy}"
                if (target, seed, label) in {(r["task"], r["seed"], r["method"]) for r in rows}:
                    continue
                started = time.perf_counter()
                task = load_task(target)
                test = test_subset(few_shot_split(task, args.shots, seed, args.dev_shots).test, args.max_test)
                if target not in handwritten:
                    known = [r["handwritten_test_accuracy"] for r in rows if r["task"] == target
                             and r["method"].startswith("transfer:")]
                    known += [r["test_accuracy"] for r in rows if r["task"] == target and r["method"] == "fixed_prompt"]
                    if known:
                        handwritten[target] = known[0]
                    else:
                        model = PromptModel.build(backbone, "fixed_prompt", task.labels, head=HEAD, task=target,
                                                  max_length=args.max_length)
                        handwritten[target] = evaluate(model, model.encode(test), 16)["accuracy"]
                model = PromptModel.build(backbone, "fixed_prompt", task.labels, head=HEAD, task=target,
                                          max_length=args.max_length, template=found["template"])
                record({"task": target, "seed": seed, "shots": args.shots, "method": label, "prompt": found["template"],
                        "test_accuracy": evaluate(model, model.encode(test), 16)["accuracy"],
                        "handwritten_test_accuracy": handwritten[target], "forwards": 0,
                        "wall_seconds": time.perf_counter() - started})
    write_report(rows, out, args, command)


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * std:.1f} ({len(values)})"


def scope(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """What was run, what was not, and on what machine: never more than the rows show."""
    from promptlearning.bench.runner import cpu_model

    wanted_tasks, wanted_seeds = ["mr", "cr", "subj", "hedge", "tweets3"], [13, 21, 42, 87, 100]
    ran = {(r["task"], r["seed"]) for r in rows if r["method"] == "soft_vocab"}  # the last row of a (task, seed)
    missing = [f"{t} seed {s}" for t in wanted_tasks for s in wanted_seeds if (t, s) not in ran]
    loads = [r["load_avg_1m"] for r in rows if "load_avg_1m" in r]
    total = sum(r["wall_seconds"] for r in rows) / 60
    seeds_per_task = {t: sorted(s for (x, s) in ran if x == t) for t in wanted_tasks}
    run_text = "; ".join(f"{t}: seeds {', '.join(map(str, s))}" for t, s in seeds_per_task.items() if s)
    return (f"**Scope.** Complete (task, seed) cells, each seed being the data, search and training seed: {run_text}. "
            + (f"Not run: {', '.join(missing)}. " if missing else "Every task of the issue × 5 seeds is here. ")
            + f"Dev has {args.dev_shots} examples per class (not 16: one scoring costs half as much); test is a fixed "
            f"{args.max_test}-example subset. 'soft_random' and 'soft_vocab' are the gradient prompt-tuning rows: the "
            "same soft template as the hybrid (same slots, same parameter count) started from random or "
            "sampled-vocabulary vectors instead of the found prompt's embeddings. Transfer was checked for the "
            f"evolutionary search's prompts only. Machine: {cpu_model()}, 1 torch thread, with another benchmark "
            f"process beside it (1-minute load average {min(loads, default=0):.1f} to {max(loads, default=0):.1f} on "
            f"2 cores), so wall times are noisy; all rows together took {total:.0f} minutes. With {2 * args.dev_shots} "
            f"dev and {args.max_test} test examples per binary task, differences of a few points are within noise.")


def write_report(rows: list[dict[str, Any]], out: Path, args: argparse.Namespace, command: str) -> None:
    tasks = [t for t in args.tasks.split(",") if any(r["task"] == t for r in rows)]
    lines = ["# Prompt search on SmolLM2-135M with the verbaliser", "",
             f"Test accuracy (%), mean ± std over data seeds (n in brackets), on a fixed random {args.max_test}-example "
             f"subset of each test split; {args.shots} training shots and {args.dev_shots} dev shots per class; "
             f"max length {args.max_length}. Searches are scored on the dev split (fitness = accuracy + 0.5 x mean "
             f"label margin) under a budget of {args.budget} forward passes (rows through the backbone). The hybrid and "
             f"the soft controls tune the evolutionary search's best prompt turned into P-tuning slots (no encoder) for "
             f"{args.steps} steps, batch 8, lr {args.lr}, keeping the best on dev of 3 evaluations (the start, step "
             f"{max(1, args.steps // 2)} and step {args.steps}); their forward passes are "
             "training rows (each also a backward pass) plus dev rows.", "",
             f"Command: `{command}`", "",
             scope(rows, args), "",
             "| method | " + " | ".join(tasks) + " | mean | forward passes (mean) | wall s (mean) |",
             "|---|" + "---:|" * (len(tasks) + 3)]
    for method in ORDER:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        cells = [mean_std([r["test_accuracy"] for r in mine if r["task"] == t]) for t in tasks]
        per_task = [statistics.mean(r["test_accuracy"] for r in mine if r["task"] == t) for t in tasks
                    if any(r["task"] == t for r in mine)]
        fwd = statistics.mean(r.get("forwards") or 0 for r in mine)
        wall = statistics.mean(r["wall_seconds"] for r in mine)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {100 * statistics.mean(per_task):.1f} | {fwd:.0f} | "
                     f"{wall:.0f} |")
    lines += paired(rows)
    stopped = [f"{r['method']} on {r['task']} seed {r['seed']} ({r['forwards']} forward passes)" for r in rows
               if r.get("converged")]
    if stopped:
        lines += ["", "Stopped before the budget because 200 candidates in a row had all been scored before "
                  "(the search had converged): " + "; ".join(stopped) + "."]
    transfer = [r for r in rows if r["method"].startswith("transfer:")]
    if transfer:
        lines += ["", "## Transfer with no further search", "",
                  "The best prompt found on the first task, evaluated as it is on other tasks, next to their own "
                  "hand-written prompt (test accuracy %, per seed).", "",
                  "| from > to | strategy | seed | found prompt | its test acc | hand-written test acc |",
                  "|---|---|---:|---|---:|---:|"]
        for r in transfer:
            _, pair, strategy = r["method"].split(":")
            prompt = r["prompt"].replace("\n", "\\n").replace("|", "\\|")
            lines.append(f"| {pair} | {strategy} | {r['seed']} | `{prompt}` | {100 * r['test_accuracy']:.1f} | "
                         f"{100 * r['handwritten_test_accuracy']:.1f} |")
    lines += ["", "## Best prompts found", "", "| task | seed | method | dev acc | prompt |", "|---|---:|---|---:|---|"]
    for r in rows:
        if r["method"] in ("evolution", "rl", "cma_es", "fixed_prompt"):
            prompt = str(r["prompt"]).replace("\n", "\\n").replace("|", "\\|")
            lines.append(f"| {r['task']} | {r['seed']} | {r['method']} | {100 * r.get('dev_accuracy', 0):.1f} | "
                         f"`{prompt}` |")
    if plot(rows, out.with_suffix(".png"), tasks):
        lines += ["", f"![best dev accuracy against forward passes]({out.with_suffix('.png').name})"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


def paired(rows: list[dict[str, Any]]) -> list[str]:
    """Differences on the same (task, seed): each search against the hand-written prompt it starts from,
    and the hybrid against the same soft template from random and vocabulary starts."""
    acc = {(r["task"], r["seed"], r["method"]): 100 * r["test_accuracy"] for r in rows if r["method"] in ORDER}
    pairs = [("evolution", "fixed_prompt"), ("rl", "fixed_prompt"), ("cma_es", "fixed_prompt"),
             ("hybrid", "fixed_prompt"), ("hybrid", "evolution"), ("hybrid", "soft_random"), ("hybrid", "soft_vocab"),
             ("soft_vocab", "soft_random")]
    out = ["", "## Paired differences", "",
           "Test accuracy difference in points on the same task and seed, mean ± std over every (task, seed) that has "
           "both, and how often the first is higher / lower.", "",
           "| method | against | difference | higher / lower | pairs |", "|---|---|---:|---:|---:|"]
    for a, b in pairs:
        d = [acc[(t, s, a)] - acc[(t, s, b)] for t, s, m in acc if m == a and (t, s, b) in acc]
        if not d:
            continue
        std = statistics.stdev(d) if len(d) > 1 else 0.0
        out.append(f"| {a} | {b} | {statistics.mean(d):+.1f} ± {std:.1f} | {sum(x > 0 for x in d)} / "
                   f"{sum(x < 0 for x in d)} | {len(d)} |")
    return out


def plot(rows: list[dict[str, Any]], path: Path, tasks: list[str]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colours = {"evolution": "tab:green", "rl": "tab:orange", "cma_es": "tab:blue"}
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for r in rows:
            if r["task"] == task and r["method"] in colours:
                xs = [p["forwards"] for p in r["curve"]]
                ys = [100 * p["best_accuracy"] for p in r["curve"]]
                ax.step(xs, ys, where="post", color=colours[r["method"]], alpha=0.8,
                        label=r["method"] if r["seed"] == min(x["seed"] for x in rows) else None)
        ax.set_title(task)
        ax.set_xlabel("forward passes")
        ax.set_ylabel("best dev accuracy (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


if __name__ == "__main__":
    main()
