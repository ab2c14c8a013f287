"""The SPT comparison (``spt.md`` and ``spt_gates.png``), from the store the spt suite shares with fewshot16.

For every task with SPT runs: test accuracy (mean ± std over the seeds SPT ran), the layers each
run chose, the search's cost against plain training of the all-layer model, and the final
model's seconds per training step against the all-layer model (same task and seed). The
isolated step times of ``benchmarks/spt_step_time.py`` (``spt_step_time.json`` beside the
output) add the fair cost comparison when present.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

ORDER = ["spt", "spt_darts", "spt_all_layers", "spt_middle_layer", "spt_first_k", "spt_last_k", "spt_random_k",
         "prompt_tuning", "finetune"]


def _fmt(xs: list[float]) -> str:
    if not xs:
        return "–"
    mean = 100 * statistics.mean(xs)
    return f"{mean:.1f} ± {100 * statistics.stdev(xs):.1f}" if len(xs) > 1 else f"{mean:.1f}"


def plot_gates(runs: dict[tuple[str, str], dict[int, dict[str, Any]]], tasks: list[str], path: Path,
               searched: tuple[str, ...] = ("spt", "spt_darts"), budget: str = "K = 2") -> Path | None:
    """Mean final gate probability per layer and task (of the first label in ``searched``), and how
    often each layer was chosen by each searched label."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    layers: list[int] = []
    for t in tasks:
        gates = [r["final_gates"] for r in runs.get((t, searched[0]), {}).values() if r.get("final_gates")]
        if not gates:
            continue
        gates = [json.loads(g) if isinstance(g, str) else g for g in gates]
        layers = list(range(len(gates[0])))
        left.plot(layers, [statistics.mean(g[i] for g in gates) for i in layers], marker="o", label=t)
    left.axhline(0.5, color="grey", lw=0.8, ls=":")
    left.set_xlabel("layer")
    left.set_ylabel("final gate probability p_l (mean over seeds)")
    left.set_title("SPT: where the gates ended")
    left.legend(fontsize=8)
    width = 0.8 / len(searched)
    for number, label in enumerate(searched):
        shift = width * (number - (len(searched) - 1) / 2)
        chosen = [layer for t in tasks for r in runs.get((t, label), {}).values() for layer in r.get("chosen_layers", [])]
        right.bar([i + shift for i in layers], [chosen.count(i) for i in layers], width, label=label)
    right.set_xlabel("layer")
    right.set_ylabel("times chosen (all tasks and seeds)")
    right.set_title(f"Layers chosen under the budget {budget}")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(rows: list[dict[str, Any]], out: Path, entry: dict[str, Any], suite: str) -> list[Path]:
    """spt.md (and spt_gates.png beside it) from the store's done rows."""
    rows = [r for r in rows if r["result"]]
    spt_keys = {(r["task"], r["seed"]) for r in rows if r["label"] in ("spt", "spt_darts")}
    runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if (r["task"], r["seed"]) in spt_keys and r["label"] in ORDER:
            runs[(r["task"], r["label"])][r["seed"]] = r["result"]
    tasks = sorted({t for t, _ in spt_keys})
    lines = ["# Selective Prompt Tuning against fixed layer choices", "",
             "MiniLM-L6 (6 layers), 16 shots per class, budget K = 2 layers, 100 training steps (batch 8), "
             "a fixed random subset of 500 test examples. SPT / SPT-DARTS: 50 bi-level search steps (gates on half "
             "of the few-shot training data, generators on the other half), then the top-2 layers are rebuilt and "
             "retrained from scratch on all of it. SPT-DARTS = straight-through gates + KL consistency (weight 1). "
             "Only the seeds SPT ran on each task are counted, for every row. Machine: the 2-core CPU dev box, one "
             "torch thread per process, other benchmark processes running alongside (so seconds are inflated "
             "but comparable within a task). Produced by " + str(entry.get("produced_by") or
             "`promptlearning bench benchmarks/suites/spt.yaml` and `promptlearning report benchmarks/suites/spt.yaml`")
             + ".", "",
             "## Test accuracy (%)", "", "| method | " + " | ".join(tasks) + " | mean |", "|---|" + "---:|" * (len(tasks) + 1)]
    for label in ORDER:
        cells, means = [], []
        for t in tasks:
            xs = [res["test_accuracy"] for seed, res in runs.get((t, label), {}).items() if (t, seed) in spt_keys]
            cells.append(_fmt(xs) + (f" (n={len(xs)})" if xs else ""))
            if xs:
                means.append(statistics.mean(xs))
        mean = f"{100 * statistics.mean(means):.1f}" if len(means) == len(tasks) else "–"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean} |")
    lines += ["", "## Paired against the all-layer model", "",
              "Same task, seed and split: the difference in test accuracy (points) to spt_all_layers, mean ± std "
              "over every (task, seed) pair both ran, how often it is higher / lower, and its mean rank among the "
              "rows that ran that pair (1 = best).", "",
              "| method | pairs | mean difference | higher / lower | mean rank |", "|---|---:|---:|---:|---:|"]
    pairs = sorted(spt_keys)
    ranks: dict[str, list[float]] = defaultdict(list)
    for t, seed in pairs:
        accs = {label: runs[(t, label)][seed]["test_accuracy"] for label in ORDER if seed in runs.get((t, label), {})}
        for label, acc in accs.items():
            ranks[label].append(1 + sum(other > acc for other in accs.values())
                                + 0.5 * (sum(other == acc for other in accs.values()) - 1))
    for label in ORDER:
        diffs = [runs[(t, label)][seed]["test_accuracy"] - runs[(t, "spt_all_layers")][seed]["test_accuracy"]
                 for t, seed in pairs if seed in runs.get((t, label), {}) and seed in runs.get((t, "spt_all_layers"), {})]
        if label == "spt_all_layers" and ranks[label]:
            lines.append(f"| {label} | {len(ranks[label])} | (reference) | – | {statistics.mean(ranks[label]):.1f} |")
        if not diffs or label == "spt_all_layers":
            continue
        spread = f" ± {100 * statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
        lines.append(f"| {label} | {len(diffs)} | {100 * statistics.mean(diffs):+.1f}{spread} | "
                     f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)} | {statistics.mean(ranks[label]):.1f} |")
    lines += ["", "## Chosen layers, search cost and step time", "",
              "| task | seed | method | chosen layers | final gate probabilities | search s / all-layer training s | "
              "final s/step / all-layer s/step |", "|---|---:|---|---|---|---:|---:|"]
    for t in tasks:
        for seed in sorted({s for tt, s in spt_keys if tt == t}):
            base = runs.get((t, "spt_all_layers"), {}).get(seed)
            for label in ("spt", "spt_darts"):
                res = runs.get((t, label), {}).get(seed)
                if not res:
                    continue
                gates = ", ".join(f"{g:.2f}" for g in res.get("final_gates", []))
                cost = f"{res['search_seconds'] / base['train_seconds']:.2f}" if base else "–"
                step = f"{res['seconds_per_step'] / base['seconds_per_step']:.2f}" if base else "–"
                lines.append(f"| {t} | {seed} | {label} | {res.get('chosen_layers')} | {gates} | {cost} | {step} |")
    lines += ["", "Fixed-layer baselines: all layers [0-5], middle [3], first-K [0, 1], last-K [4, 5], random-K (two "
              "layers drawn from the run's seed). Step time falls with the lowest prompted layer because no gradient "
              "flows below it. The ratios mix runs made under different loads (up to six processes on two cores, "
              "changing over the session), so they are indicative only: the isolated, interleaved timing in "
              "[spt_step_time.md](spt_step_time.md) (`benchmarks/spt_step_time.py`) is the fair measure.", ""]
    figure = plot_gates(runs, tasks, out.with_name("spt_gates.png"))
    if figure is not None:
        lines += ["## Learned gates", "", f"![SPT gates per layer]({figure.name})", "",
                  "Left: each layer's final gate probability p_l, mean over the five seeds, per task (SPT, sigmoid "
                  "gates). Right: how often each layer was among the two chosen, over all tasks and seeds. The gate "
                  "history of one search over its steps is `gates.png` in any `train --method spt` run directory "
                  "(an example is in the README).", ""]
    timing = out.parent / "spt_step_time.json"
    if timing.is_file():  # the isolated, interleaved step times: the fair cost comparison
        rows_t = {r["setting"]: r for r in json.loads(timing.read_text())["rows"]}
        search_steps, train_steps = 50, 100  # the spt suite's protocol
        lines += ["## Cost against training the all-layer model (isolated timing)", "",
                  f"From [spt_step_time.md](spt_step_time.md) (one process, settings interleaved). With the suite's "
                  f"{search_steps} search steps and {train_steps} training steps, the search costs "
                  "(search-step ratio × search steps / training steps) of the all-layer model's training, and the "
                  "final model trains at its own step ratio:", "",
                  "| setting | trainable params | step time / all-layer step | whole phase / all-layer training |",
                  "|---|---:|---:|---:|"]
        for name, r in rows_t.items():
            phase = r["ratio"] * (search_steps if name.startswith("search") else train_steps) / train_steps
            lines.append(f"| {name} | {r['trainable_params']:,} | {r['ratio']:.2f} | {phase:.2f} |")
        lines.append("")
    out.write_text("\n".join(lines) + "\n")
    return [out] + ([figure] if figure is not None else [])
