"""The prompt-search table (``prompt_search.md`` and its PNG) from a prompt_search suite's rows.

Every strategy side by side under one forward-pass budget, the hybrid against its soft
controls, paired differences on the same (task, seed), transfer of the found prompt with no
further search, the best prompts found, and best dev accuracy against forward passes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlearning.bench.kinds import kind_of
from promptlearning.bench.measure import cpu_model
from promptlearning.bench.tables import machine_text

ORDER = ["fixed_prompt", "evolution", "rl", "cma_es", "hybrid", "soft_random", "soft_vocab"]


@dataclass
class Settings:
    """What the table's prose states, read from the suite's rows."""

    tasks: str
    shots: int
    dev_shots: int
    max_test: int
    max_length: int
    budget: int
    steps: int
    lr: float
    cpu: str


def legacy_row(r: dict[str, Any]) -> dict[str, Any]:
    """A store row in the shape the table reads (task, seed, shots, method = label, result fields)."""
    return {"task": r["task"], "seed": int(r["seed"]), "shots": int(r["shots"]), "method": r["label"], **r["result"]}


def write(rows: list[dict[str, Any]], out: Path, entry: dict[str, Any], suite: str) -> list[Path]:
    mine = [r for r in rows if r["suite"] == suite and kind_of(r["config"]) == "prompt_search" and r["result"]]
    if not mine:
        out.write_text(f"# {suite}: no prompt-search rows in this store yet\n")
        return [out]
    configs = [r["config"] for r in mine]
    hybrid = next((c for c in configs if c["role"] == "hybrid"), None)
    data = configs[0]["data"]
    args = Settings(tasks=",".join(dict.fromkeys(c["data"]["task"] for c in configs if c["role"] != "transfer")),
                    shots=data["shots"], dev_shots=data["dev_shots"], max_test=data["max_test"],
                    max_length=configs[0]["max_length"], budget=configs[0]["budget"],
                    steps=hybrid["train"]["max_steps"] if hybrid else 0, lr=hybrid["train"]["lr"] if hybrid else 0.0,
                    cpu=machine_text(mine, entry, lambda m: str(m.get('gpu') or m.get('cpu')), fallback=cpu_model()))
    command = str(entry.get("produced_by") or f"promptlearning bench benchmarks/suites/{suite}.yaml")
    target = out.with_suffix("")
    write_report([legacy_row(r) for r in mine], target, args, command)
    return [out] + ([out.with_suffix(".png")] if out.with_suffix(".png").is_file() else [])


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * std:.1f} ({len(values)})"


def scope(rows: list[dict[str, Any]], args: Settings) -> str:
    """What was run, what was not, and on what machine: never more than the rows show."""
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
            f"evolutionary search's prompts only. Machine: {args.cpu}, 1 torch thread, with another benchmark "
            f"process beside it (1-minute load average {min(loads, default=0):.1f} to {max(loads, default=0):.1f} on "
            f"2 cores), so wall times are noisy; all rows together took {total:.0f} minutes. With {2 * args.dev_shots} "
            f"dev and {args.max_test} test examples per binary task, differences of a few points are within noise.")


def write_report(rows: list[dict[str, Any]], out: Path, args: Settings, command: str) -> None:
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
