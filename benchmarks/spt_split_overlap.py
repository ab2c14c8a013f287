"""Are SPT's chosen layers the data's or the validation split's? Overlap of choices across split seeds.

Reads JSON lines of ``benchmarks/spt_search_only.py`` (each a search on the same few-shot examples with
another split seed, so another half of them trains the gates) and, per setting (task, K, data seed, gate
learning rate, search length, validation share), reports the mean number of layers two searches' choices
of K layers share, over every pair of split seeds, for the layers chosen from the best-on-dev step's
gates (the default) and from the last step's (``--gates-from last``). Choices that were the data's would
share most layers; a random draw of K of N layers shares K * K / N on average.

    python benchmarks/spt_split_overlap.py benchmarks/results/mpnet_spt_split_noise.jsonl \\
        benchmarks/results/mpnet_spt_k64_split_noise.jsonl --out benchmarks/results/mpnet_spt_split_overlap.md
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def top(gates: list[float], k: int) -> list[int]:
    """The k layers with the largest gates, ties to the lower layer (as the search breaks them)."""
    return sorted(sorted(range(len(gates)), key=lambda i: (-gates[i], i))[:k])


def mean_overlap(choices: list[list[int]]) -> float | None:
    pairs = list(itertools.combinations(choices, 2))
    return sum(len(set(a) & set(b)) for a, b in pairs) / len(pairs) if pairs else None


def settings(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        # arch_batch: None (a batch of 8 per gate step, as before the option existed) or 0 (the whole split)
        key = (r["task"], r.get("shots", 16), r["data_seed"], r["arch_lr"], r["search_steps"], r["val_fraction"],
               -1 if r.get("arch_batch") is None else r["arch_batch"], r.get("gate", "sigmoid"), r.get("consistency", 0.0))
        groups[key].append(r)
    out = []
    for (task, shots, data_seed, arch_lr, steps, val_fraction, arch_batch, gate, consistency), members in sorted(
            groups.items()):
        val_examples = round(2 * shots * val_fraction)
        k = int(members[0]["budget"])
        layers = len(members[0]["final_gates"])
        best = [list(r["chosen_layers"]) for r in members]
        last = [top(r["gate_trace"][-1]["gates"], k) for r in members]
        out.append({"task": task, "shots": shots, "data_seed": data_seed, "arch_lr": arch_lr, "steps": steps,
                    "val_examples": val_examples, "k": k, "layers": layers,
                    "gate": gate if not consistency else f"{gate}, KL {consistency:g}",
                    "gate_batch": val_examples if arch_batch == 0 else (8 if arch_batch == -1 else arch_batch),
                    "split_seeds": [r["seed"] for r in members], "kept_steps": [r["search_best_step"] for r in members],
                    "best": mean_overlap(best), "last": mean_overlap(last), "random": k * k / layers,
                    "choices_best": best, "choices_last": last,
                    "max_gate_last": [round(max(r["gate_trace"][-1]["gates"]), 2) for r in members]})
    return out


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | K per class | gate | gate-training examples | per gate step | gate lr | search steps | split seeds | "
             "kept steps | shared layers (best-dev gates) | shared layers (last gates) | random draw | largest last gate |",
             "|---|---:|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['shots']} | {r['gate']} | {r['val_examples']} | {r['gate_batch']} | {r['arch_lr']:g} | "
                     f"{r['steps']} | "
                     f"{', '.join(map(str, r['split_seeds']))} | {', '.join(map(str, r['kept_steps']))} | "
                     f"{_cell(r['best'])} | {_cell(r['last'])} | {r['random']:.2f} | "
                     f"{', '.join(map(str, r['max_gate_last']))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON lines of benchmarks/spt_search_only.py")
    parser.add_argument("--out", default=None, help="write the table (markdown) here too")
    args = parser.parse_args()
    runs = [json.loads(line) for path in args.runs for line in Path(path).read_text().splitlines() if line]
    rows = settings(runs)
    text = table(rows)
    print(text)
    for r in rows:
        print(f"{r['task']} K={r['shots']} lr {r['arch_lr']:g}: best-dev choices {r['choices_best']}; "
              f"last-step choices {r['choices_last']}")
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
