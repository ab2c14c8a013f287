"""Forward cost of the task-conditioned generator (hyperprompt, with attention) against a static prompt of
the same length and the bare backbone, at one batch of real sentences (inference).

The models are timed in interleaved rounds (every model once per round), so a change in the
machine's load hits all of them alike: read the ratios, not the milliseconds, on a busy machine.
How fast a meta-learned start converges is a suite, not a timing: benchmarks/suites/meta_convergence_sweep.yaml.

    OMP_NUM_THREADS=1 python benchmarks/hyperprompt_forward_time.py --task mr --batch 32 --rounds 15
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from promptlearning.backbones import shared_backbone
from promptlearning.data import load_task
from promptlearning.data.batching import batches
from promptlearning.data.task_info import TaskInfo
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel

HEAD = HeadConfig(kind="label_description")
#: (row name, method, options): what is timed
MODELS = (("bare backbone (fixed prompt, none)", "fixed_prompt", {}),
          ("static prompt (prompt_tuning, P={p})", "prompt_tuning", {"num_tokens": None}),
          ("hyperprompt (P={p}, attention)", "hyperprompt", {"num_tokens": None}))


def forward_ms(backbone: Any, task: str, batch_size: int, prompt: int, rounds: int) -> dict[str, tuple[float, int]]:
    """Median ms per forward of each model on the first ``batch_size`` test sentences of ``task``."""
    data = load_task(task)
    infos = [TaskInfo(task, data.labels, data.description)]
    models = {}
    for name, method, options in MODELS:
        options = {k: prompt if v is None else v for k, v in options.items()}
        models[name.format(p=prompt)] = PromptModel.build(backbone, method, data.labels, method_options=options,
                                                          head=HEAD, task=task, tasks=infos).eval()
    first = next(iter(models.values()))
    batch = batches(first.encode(data.test[:batch_size]), batch_size, first.pad_id, first.left_pad)[0]
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():  # warm-up
            model(batch)
        for _ in range(rounds):
            for name, model in models.items():
                started = time.perf_counter()
                model(batch)
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: (statistics.median(ts), models[name].num_trainable()) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="minilm-l6")
    p.add_argument("--task", default="mr", help="whose test sentences make the batch")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--prompt", type=int, default=20, help="prompt length P of both prompt methods")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--out", default="benchmarks/results/hyperprompt_forward_time")
    args = p.parse_args()
    torch.manual_seed(0)
    timed = forward_ms(shared_backbone(args.backbone), args.task, args.batch, args.prompt, args.rounds)
    base = timed[MODELS[1][0].format(p=args.prompt)][0]
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"
    lines = [f"# Forward cost of the hyperprompt ({args.backbone}, batch {args.batch}, P={args.prompt})", "",
             f"Machine: {machine}. Inference on the first {args.batch} test sentences of {args.task}, "
             f"label-description head; median of {args.rounds} interleaved rounds after one warm-up (other "
             "processes on the machine inflate the milliseconds alike; the ratios are comparable).", "",
             f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/hyperprompt_forward_time.py "
             f"--backbone {args.backbone} --task {args.task} --batch {args.batch} --prompt {args.prompt} "
             f"--rounds {args.rounds}`", "",
             "| model | ms per batch | vs static prompt | trainable |", "|---|---:|---:|---:|"]
    for name, (ms, params) in timed.items():
        lines.append(f"| {name} | {ms:.0f} | {ms / base:.2f}x | {params:,} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "machine": machine,
                                                    "forward_ms": {k: v[0] for k, v in timed.items()},
                                                    "trainable": {k: v[1] for k, v in timed.items()}}, indent=1) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
