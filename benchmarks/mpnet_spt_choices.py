"""Which 4 of 12 layers each SPT search chose on all-mpnet-base-v2, per task and data seed (mpnet_spt_choices.png).

One row per (task, data seed), one column per layer. Filled cells: the gate search's choice (spt_k4); rings:
successive halving's (spt_k4_halving). Beside each row, the test accuracy of the gate search, halving and the
fixed middle four layers [4-7] at that seed. It shows what mpnet_spt_seeds.md's table averages away: whether
the searches come back to the same layers when the 16-shot split changes, and whether agreeing pays.
Reads the store only; runs nothing.

    python benchmarks/mpnet_spt_choices.py [--store benchmarks/results/mpnet16]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptlearning.bench.store import ResultStore

HERE = Path(__file__).resolve().parent
TASKS = ("mr", "cr", "subj", "hedge")
SEEDS = (13, 21, 42)
LABELS = ("spt_k4", "spt_k4_halving", "spt_middle_k4")


def _collect(store_dir: str) -> dict[tuple[str, int, str], dict[str, Any]]:
    """(task, seed, label) -> result, for the done rows of the labels drawn (any suite: one store, shared jobs)."""
    found: dict[tuple[str, int, str], dict[str, Any]] = {}
    with ResultStore(store_dir, create=False) as store:
        for row in store.rows("done"):
            config = row["config"]
            if (row["label"] in LABELS and row["task"] in TASKS and row["seed"] in SEEDS and row["result"]
                    and config["data"]["shots"] == 16 and config["train"]["max_steps"] == 50):
                found[(row["task"], row["seed"], row["label"])] = row["result"]
    return found


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(HERE / "results" / "mpnet16"))
    parser.add_argument("--out", default=str(HERE / "results" / "mpnet_spt_choices.png"))
    args = parser.parse_args()
    found = _collect(args.store)
    rows = [(t, s) for t in TASKS for s in SEEDS if (t, s, "spt_k4") in found]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.4))
    for y, (task, seed) in enumerate(rows):
        gate = found[(task, seed, "spt_k4")]
        halving = found.get((task, seed, "spt_k4_halving"), {})
        ax.scatter(gate["chosen_layers"], [y] * 4, s=120, color="tab:blue", zorder=2)
        if halving.get("chosen_layers"):
            ax.scatter(halving["chosen_layers"], [y] * 4, s=260, facecolors="none", edgecolors="tab:orange",
                       linewidths=2, zorder=3)
        scores = [found.get((task, seed, label), {}).get("test_accuracy") for label in LABELS]
        text = " / ".join("–" if v is None else f"{100 * v:.1f}" for v in scores)
        ax.text(12.0, y, text, va="center", fontsize=8)
        print(f"{task} seed {seed}: gates {gate['chosen_layers']} halving {halving.get('chosen_layers')} "
              f"test (gates / halving / middle four) {text}")
    ax.axvspan(3.5, 7.5, color="0.92", zorder=0)
    ax.set_yticks(range(len(rows)), [f"{t} seed {s}" for t, s in rows])
    ax.set_xticks(range(12))
    ax.set_xlim(-0.6, 15.2)
    ax.invert_yaxis()
    ax.set_xlabel("layer (grey: the fixed middle four [4-7])")
    ax.set_title("SPT's K = 4 choice per data seed: gate search (dots), halving (rings); "
                 "test % gates / halving / middle four", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
