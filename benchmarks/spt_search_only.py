"""SPT's layer search alone, repeated over split seeds: are the chosen layers the data's or the split's?

Runs exactly the search a ``promptlearning train --method spt`` run (or an mpnet_spt bench row) makes
(same data, options and order of operations, through ``run_experiment``), stops before the
retraining, and records each search's per-step gate trace, kept (best-on-dev) step, final gates and
chosen layers. ``--seeds`` are training seeds: with ``--data-seed`` fixed the 2K few-shot examples
stay the same, and the seed changes which half trains the gates (the search's validation split),
the batch order and the head's initialisation. The first seed equal to the data seed reproduces the
bench row of the same settings (a check of this script).

    python benchmarks/spt_search_only.py --task mr --data-seed 13 --seeds 13 1 2 3 --arch-lr 0.3 \\
        --out benchmarks/results/mpnet_spt_split_noise.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from promptlearning.runs.single_task import DataConfig, ExperimentConfig, run_experiment
from promptlearning.training import TrainConfig, layer_selection
from promptlearning.training.gate_search import SearchConfig


class SearchDone(Exception):
    def __init__(self, found: layer_selection.SearchResult) -> None:
        super().__init__("search done")
        self.found = found


def search_once(task: str, data_seed: int, seed: int, arch_lr: float, steps: int, budget: int,
                backbone: str, val_fraction: float, shots: int = 16, arch_batch: int | None = None,
                gate: str = "sigmoid", consistency: float = 0.0) -> dict[str, Any]:
    cfg = ExperimentConfig(data=DataConfig(task=task, shots=shots, data_seed=data_seed, max_test=200),
                           backbone=backbone, method="spt", method_options={"gate": gate},
                           train=TrainConfig(max_steps=50, eval_every=10, seed=seed, quiet=True),
                           search=SearchConfig(budget=budget, search_steps=steps, arch_lr=arch_lr,
                                               val_fraction=val_fraction, arch_batch=arch_batch,
                                               consistency=consistency))
    real = layer_selection.search_layers

    def stop_after(*args: Any, **kwargs: Any) -> layer_selection.SearchResult:
        raise SearchDone(real(*args, **kwargs))

    layer_selection.search_layers = stop_after  # type: ignore[assignment]
    started = time.process_time()
    try:
        run_experiment(cfg, baseline=False, log=lambda _: None)
    except SearchDone as done:
        found = done.found
    else:  # pragma: no cover - run_experiment always searches for spt without selected_layers
        raise RuntimeError("the search did not run")
    finally:
        layer_selection.search_layers = real  # type: ignore[assignment]
    return {"task": task, "shots": shots, "data_seed": data_seed, "seed": seed, "arch_lr": arch_lr, "search_steps": steps,
            "val_fraction": val_fraction, "budget": budget, "arch_batch": arch_batch,
            "gate": gate, "consistency": consistency, "chosen_layers": found.chosen_layers,
            "final_gates": found.final_gates, "search_best_step": found.best_step,
            "search_dev_curve": found.dev_curve, "gate_trace": found.gate_trace,
            "cpu_seconds": time.process_time() - started, "load_avg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mr")
    parser.add_argument("--data-seed", type=int, default=13)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 1, 2, 3])
    parser.add_argument("--arch-lr", type=float, nargs="+", default=[0.3])
    parser.add_argument("--search-steps", type=int, default=25)
    parser.add_argument("--val-fraction", type=float, default=0.5)
    parser.add_argument("--budget", type=int, default=4)
    parser.add_argument("--shots", type=int, default=16, help="K per class; half of the 2K (val-fraction) trains the gates")
    parser.add_argument("--arch-batch", type=int, default=None,
                        help="validation rows per gate step (default: the batch size, 8); 0: the whole validation half")
    parser.add_argument("--gate", default="sigmoid", help="SPT's gate: sigmoid, straight_through (SPT-DARTS) or normalized")
    parser.add_argument("--consistency", type=float, default=0.0,
                        help="weight of the KL term toward the discretised top-K model (SPT-DARTS: 0.5)")
    parser.add_argument("--backbone", default="mpnet-base")
    parser.add_argument("--out", required=True, help="JSON lines file; runs already in it are skipped")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    done = set()
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["task"], r.get("shots", 16), r["data_seed"], r["seed"], r["arch_lr"], r["search_steps"],
                      r["val_fraction"], r.get("arch_batch"), r.get("gate", "sigmoid"), r.get("consistency", 0.0)))
    for arch_lr, seed in itertools.product(args.arch_lr, args.seeds):
        key = (args.task, args.shots, args.data_seed, seed, arch_lr, args.search_steps, args.val_fraction,
               args.arch_batch, args.gate, args.consistency)
        if key in done:
            continue
        r = search_once(args.task, args.data_seed, seed, arch_lr, args.search_steps, args.budget, args.backbone,
                        args.val_fraction, args.shots, args.arch_batch, args.gate, args.consistency)
        with out.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
        print(f"{args.task} data seed {args.data_seed} seed {seed} arch_lr {arch_lr}: chose {r['chosen_layers']} "
              f"(kept step {r['search_best_step']}; gates {[round(g, 2) for g in r['final_gates']]}; "
              f"{r['cpu_seconds']:.0f} CPU s)", flush=True)


if __name__ == "__main__":
    main()
