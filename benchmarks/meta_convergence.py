"""Convergence and overhead of meta prompt learning on a task held out of meta-training.

1. Meta-train a soft prompt with Reptile on every registered task except the target (or load
   one with --adapter), then adapt prompt tuning on the target from three starts: the
   meta-learned prompt, sampled vocabulary embeddings and random vectors; dev accuracy every
   few steps gives the curves (PNG), test accuracy at the end.
2. Forward cost of the task-conditioned generator (hyperprompt, with attention) against a
   static prompt of the same length and the bare backbone, at batch 32.

    python benchmarks/meta_convergence.py --task hedge --out benchmarks/results/meta_convergence
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

from promptlearning.data import few_shot_split, list_tasks, load_task
from promptlearning.data.batching import batches
from promptlearning.data.task_info import TaskInfo
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.runs.multitask import run_multitask
from promptlearning.runs.single_task import ExperimentConfig, shared_backbone, test_subset
from promptlearning.training import TrainConfig, Trainer
from promptlearning.training.meta_learning import MetaConfig
from promptlearning.training.metrics import evaluate

HEAD = HeadConfig(kind="label_description")


def meta_prompt(args: argparse.Namespace) -> tuple[torch.Tensor, float]:
    if args.adapter:
        return PromptModel.from_pretrained(args.adapter).method.prompt.detach().clone(), 0.0
    tasks = [t.name for t in list_tasks() if t.name != args.task]
    cfg = ExperimentConfig(method="prompt_tuning", method_options={"num_tokens": 20}, tasks=tasks, head=HEAD,
                           train=TrainConfig(max_steps=args.meta_steps, eval_every=20, seed=args.seed, quiet=True),
                           meta=MetaConfig(meta_algorithm="reptile", inner_steps=3, inner_lr=1.0, tasks_per_step=1))
    cfg.data.shots, cfg.data.data_seed, cfg.data.max_test = 16, args.seed, 50
    started = time.perf_counter()
    model = run_multitask(cfg, log=lambda *_: None)["_model"]
    return model.method.prompt.detach().clone(), time.perf_counter() - started


def curve(backbone: Any, args: argparse.Namespace, init: str, start: torch.Tensor | None) -> dict[str, Any]:
    return adaptation_curve(backbone, args.task, args.shots, args.seed, init, start, steps=args.steps,
                            eval_every=args.eval_every, max_test=args.max_test)


def adaptation_curve(backbone: Any, task: str, shots: int, seed: int, init: str, start: torch.Tensor | None, *,
                     steps: int, eval_every: int, max_test: int) -> dict[str, Any]:
    """Prompt tuning on ``task`` from one start (``start`` overrides the init), with dev accuracy at step 0
    and every ``eval_every`` steps: the curve that shows how fast a start converges."""
    data = load_task(task)
    split = few_shot_split(data, shots, seed)
    options = {"num_tokens": 20, "init": "random" if init == "random" else "vocab", "init_seed": seed}
    model = PromptModel.build(backbone, "prompt_tuning", data.labels, method_options=options, head=HEAD, task=data.name,
                              tasks=[TaskInfo(data.name, data.labels, data.description)])
    if start is not None:
        with torch.no_grad():
            model.method.prompt.copy_(start)
    dev = model.encode(split.dev)
    first = evaluate(model, dev)["accuracy"]
    fit = Trainer(model, TrainConfig(max_steps=steps, eval_every=eval_every, seed=seed, quiet=True),
                  model.encode(split.train), dev).fit()
    test = evaluate(model, model.encode(test_subset(split.test, max_test)))["accuracy"]
    points = [(0, first)] + [(h["step"], h["dev_accuracy"]) for h in fit.history]
    return {"init": init, "curve": points, "test_accuracy": test, "adapt_seconds": fit.train_seconds}


def forward_ms(backbone: Any, specs: list[tuple[str, str, dict[str, Any]]], rounds: int = 15
               ) -> dict[str, tuple[float, int]]:
    """Median ms per batch-32 forward of each model, measured in interleaved rounds (fair on a busy machine)."""
    data = load_task("mr")
    infos = [TaskInfo("mr", data.labels, data.description)]
    models = {}
    for name, method, options in specs:
        model = PromptModel.build(backbone, method, data.labels, method_options=options, head=HEAD, task="mr",
                                  tasks=infos)
        models[name] = model.eval()
    batch = batches(next(iter(models.values())).encode(data.test[:32]), 32, 0)[0]
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for _ in range(rounds):
            for name, model in models.items():
                started = time.perf_counter()
                model(batch)
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: (statistics.median(ts), models[name].num_trainable()) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="hedge")
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--meta-steps", type=int, default=60)
    p.add_argument("--max-test", type=int, default=300)
    p.add_argument("--adapter", help="a prompt_tuning adapter meta-trained without --task (else one is trained)")
    p.add_argument("--out", default="benchmarks/results/meta_convergence")
    args = p.parse_args()
    backbone = shared_backbone("minilm-l6")
    torch.manual_seed(args.seed)
    start, meta_seconds = meta_prompt(args)
    curves = [curve(backbone, args, "meta (reptile)", start), curve(backbone, args, "vocab", None),
              curve(backbone, args, "random", None)]
    overhead = forward_ms(backbone, [("bare backbone (fixed prompt, none)", "fixed_prompt", {}),
                                     ("static prompt (prompt_tuning, P=20)", "prompt_tuning", {"num_tokens": 20}),
                                     ("hyperprompt (P=20, attention)", "hyperprompt", {"num_tokens": 20})])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "curves": curves, "overhead": overhead,
                                                    "meta_seconds": meta_seconds}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for c in curves:
            xs, ys = zip(*c["curve"], strict=True)
            ax.plot(xs, [100 * y for y in ys], marker="o", label=c["init"])
        ax.set_xlabel("adaptation steps")
        ax.set_ylabel("dev accuracy (%)")
        ax.set_title(f"{args.task}, K={args.shots}: prompt tuning from three starts")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out.with_suffix(".png"), dpi=110)
    except ImportError:
        pass
    base = overhead["static prompt (prompt_tuning, P=20)"][0]
    lines = [f"# Meta-learned prompt initialisation on a held-out task ({args.task})", "",
             f"Machine: {platform.machine()} CPU, 2 cores, torch {torch.__version__}, one thread, other benchmark "
             "processes running alongside (times are inflated, ratios comparable).",
             f"Command: `python benchmarks/meta_convergence.py --task {args.task} --seed {args.seed} --steps {args.steps}`",
             "", f"The start was meta-trained with Reptile ({args.meta_steps} outer steps, 3 inner steps, one episode per "
             f"step) on every registered task except {args.task} ({meta_seconds:.0f} s). Adaptation: prompt tuning "
             f"(P=20, lr 3e-2), K={args.shots} per class, {args.steps} steps, label-description head, seed {args.seed}.",
             f"One seed; the dev set has {2 * args.shots} examples per two-class task, so one example moves dev "
             "accuracy by several points: read the curves as a sketch, not a ranking.",
             "", "| start | dev at step 0 | best dev | test accuracy | adaptation s |", "|---|---:|---:|---:|---:|"]
    for c in curves:
        lines.append(f"| {c['init']} | {100 * c['curve'][0][1]:.1f} | {100 * max(y for _, y in c['curve']):.1f} | "
                     f"{100 * c['test_accuracy']:.1f} | {c['adapt_seconds']:.1f} |")
    lines += ["", f"![dev accuracy against adaptation steps]({out.with_suffix('.png').name})", "",
              "## Forward cost at batch 32 (mr test sentences; median of 15 interleaved rounds)", "", "| model | ms per batch | vs static prompt | trainable |",
              "|---|---:|---:|---:|"]
    for name, (ms, params) in overhead.items():
        lines.append(f"| {name} | {ms:.0f} | {ms / base:.2f}x | {params:,} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
