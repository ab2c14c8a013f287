"""Where SPT's gates ended on all-mpnet-base-v2, and which layers it chose (mpnet_spt_gates.png).

Reads the done rows of the mpnet_spt suite from its store and draws, with the SPT table's plotting
function, each task's mean final gate probability per layer (spt_k4) and how often each of the 12
layers was chosen at K = 4 (spt_k4 at the default gate learning rate, spt_k4_fast_gates at 0.3,
spt_k4_gates_lr1 at 1.0) and K = 2 (spt_k2), for the labels that have done rows. Every search
step's gates are drawn by benchmarks/mpnet_spt_gate_trace.py (mpnet_spt_gate_trace.png).

    python benchmarks/mpnet_spt_gates.py [--store benchmarks/results/mpnet16]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

from promptlearning.bench.store import ResultStore
from promptlearning.bench.tables.spt import plot_gates

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(HERE / "results" / "mpnet16"))
    parser.add_argument("--out", default=str(HERE / "results" / "mpnet_spt_gates.png"))
    args = parser.parse_args()
    runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    with ResultStore(args.store) as store:
        for row in store.rows("done"):
            if row["suite"] == "mpnet_spt" and row["result"]:
                runs[(row["task"], row["label"])][row["seed"]] = row["result"]
    tasks = sorted({task for task, label in runs if label == "spt_k4"})
    for (task, label), by_seed in sorted(runs.items()):
        for seed, result in sorted(by_seed.items()):
            if result.get("final_gates"):
                gates = ", ".join(f"{g:.2f}" for g in result["final_gates"])
                print(f"{task} seed {seed} {label}: chose {result.get('chosen_layers')}; final gates {gates}")
    searched = tuple(label for label in ("spt_k4", "spt_k4_fast_gates", "spt_k4_gates_lr1", "spt_k2")
                     if any(lab == label for _, lab in runs))
    written = plot_gates(runs, tasks, Path(args.out), searched=searched or ("spt_k4",),
                         budget="K = 4 (spt_k4*: gate learning rate 0.03, 0.3, 1.0) and K = 2 (spt_k2) of 12")
    print(f"wrote {written}" if written else "matplotlib is not installed: no figure")


if __name__ == "__main__":
    main()
