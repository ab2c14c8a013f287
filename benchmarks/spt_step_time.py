"""Isolated step times of SPT's models against the all-layer model (issue: SPT cost report).

The bench's per-run seconds mix runs made under different machine loads, so this script times
every setting in one process, interleaved round-robin (each round times one step of every
setting), and reports medians:

* a fixed-architecture training step for each layer choice (all layers, the chosen pairs the
  SPT bench found, first-K, last-K, middle) — gradients stop at the lowest prompted layer, so
  a high choice should be cheaper;
* one bi-level search step of the gated supernet (a gate update on a validation batch plus a
  weight update), first-order, with and without the SPT-DARTS consistency term.

    OMP_NUM_THREADS=1 python benchmarks/spt_step_time.py --out benchmarks/results/spt_step_time
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from promptlearning import PromptModel, __version__, load_backbone
from promptlearning.data.batching import Batch, Encoded
from promptlearning.training import TrainConfig
from promptlearning.training.gate_search import BilevelTrainer, SearchConfig
from promptlearning.training.trainer import parameter_groups

LAYER_CHOICES: dict[str, list[int]] = {
    "all layers [0-5]": [0, 1, 2, 3, 4, 5],
    "all layers [0-5], shared down-projection": [0, 1, 2, 3, 4, 5],
    "first-K [0, 1]": [0, 1],
    "middle [3]": [3],
    "[2, 4]": [2, 4],
    "last-K [4, 5]": [4, 5],
}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=48, help="input tokens per row")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="benchmarks/results/spt_step_time")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    backbone = load_backbone(args.backbone).to(device)
    B, L = args.batch, args.length
    ids = torch.randint(1000, min(backbone.info.vocab_size, 20000), (B, L))
    labels = torch.randint(0, 2, (B,))
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids), task_ids=torch.zeros(B, dtype=torch.long),
                  labels=labels).to(device)
    items = [Encoded(tuple(ids[i].tolist()), None, int(labels[i]), 0) for i in range(B)]

    steps: dict[str, Callable[[], None]] = {}
    params: dict[str, int] = {}
    for name, layers in LAYER_CHOICES.items():
        options: dict[str, object] = {"selected_layers": layers, "share_down": "shared" in name}
        model = PromptModel.build(backbone, "spt", ["a", "b"], method_options=options)
        model = model.to(device).train()
        optimizer = torch.optim.AdamW(parameter_groups(model, TrainConfig()), lr=1e-3)

        def step(model: PromptModel = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            loss = model(batch).loss
            assert loss is not None
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[f"train, {name}"] = step
        params[f"train, {name}"] = model.num_trainable()
    for name, consistency, share in (("search step, SPT (first-order)", 0.0, False),
                                     ("search step, SPT, shared down-projection", 0.0, True),
                                     ("search step, SPT-DARTS (straight-through + consistency)", 1.0, False)):
        gate = "straight_through" if consistency else "sigmoid"
        model = PromptModel.build(backbone, "spt", ["a", "b"], method_options={"gate": gate, "share_down": share})
        model = model.to(device).train()
        cfg = TrainConfig(batch_size=B, device=args.device, quiet=True)
        trainer = BilevelTrainer(model, cfg, SearchConfig(budget=2, consistency=consistency), items, items, items)
        optimizer = torch.optim.AdamW(parameter_groups(model, cfg), lr=1e-3)

        def search_step(trainer: BilevelTrainer = trainer, optimizer: torch.optim.Optimizer = optimizer) -> None:
            trainer.training_step(batch, 0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        steps[name] = search_step
        params[name] = model.num_trainable()

    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.warmup + args.rounds):
        for name, fn in steps.items():
            _sync()
            t = time.perf_counter()
            fn()
            _sync()
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["train, all layers [0-5]"])
    rows = [{"setting": name, "seconds": statistics.median(ts), "ratio": statistics.median(ts) / base,
             "trainable_params": params[name]} for name, ts in times.items()]
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {device}"
               + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"backbone": args.backbone, "batch": B, "length": L, "rounds": args.rounds, "machine": machine,
            "torch": torch.__version__, "promptlearning": __version__}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# SPT step times against the all-layer model ({args.backbone}, B={B}, L={L}, P=5 per layer)", "",
             f"Machine: {machine}; torch {torch.__version__}; median of {args.rounds} interleaved rounds after "
             f"{args.warmup} warm-up rounds (every setting timed once per round, so load changes hit all alike).",
             "", f"Command: `python benchmarks/spt_step_time.py --backbone {args.backbone} --batch {B} --length {L} "
             f"--device {device.type}`", "",
             "| setting | trainable params | seconds/step | ratio to all-layer training step |", "|---|---:|---:|---:|"]
    lines += [f"| {r['setting']} | {r['trainable_params']:,} | {r['seconds']:.4f} | {r['ratio']:.2f} |" for r in rows]
    lines += ["", "A fixed-architecture step stops its backward pass at the lowest prompted layer, so the step gets "
              "cheaper the higher the chosen layers sit. A search step runs the supernet (a generator at every "
              "layer) twice, once for the gates on a validation batch and once for the weights, and SPT-DARTS adds a "
              "no-grad pass of the discretised model for the consistency term. The search's total cost relative to "
              "training the all-layer model is (search steps × search-step ratio) / training steps: with the bench's "
              "50 search steps against 100 training steps, half the search-step ratio.", ""]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
