"""EfficientNet-Lite0 few-shot on MNIST 5k and digits: label mapping without training, visual prompt,
linear probe and full fine-tuning, at K = 1, 4, 16 images per class (issue 23).

Every number is a :func:`promptlearning.runs.single_task.run_experiment` run (what ``promptlearning
train`` prints), on the packaged backbone fed images of ``--image-size`` pixels (the network is
convolutional, so a smaller input only costs less). Results go to a JSON-lines file, one row per
(seed, task, K, method), and a killed run resumes where it stopped; ``--table`` writes the markdown.

    python benchmarks/vision_fewshot.py --image-size 112 --seeds 13 21 --max-test 200 --steps 40
    python benchmarks/vision_fewshot.py --table
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "vision_fewshot.jsonl"
TABLE = Path(__file__).parent / "results" / "vision.md"

#: method label -> (method, method options, head, training overrides)
METHODS: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "label mapping (no training)": ("zero_shot", {}, {"kind": "label_mapping"}, {}),
    "visual prompt + label mapping": ("visual_prompt", {"pad": 14}, {"kind": "label_mapping"}, {"lr": 0.05}),
    "linear probe": ("linear_probe", {}, {}, {}),
    "full fine-tuning": ("finetune", {}, {}, {"lr": 1e-4}),
}


def run(args: argparse.Namespace) -> None:
    import torch

    from promptlearning.backbones import load_backbone
    from promptlearning.heads.base import HeadConfig
    from promptlearning.image_backbones import ImageBackbone, at_image_size
    from promptlearning.runs.single_task import DataConfig, ExperimentConfig, backbone_for, run_experiment
    from promptlearning.training import TrainConfig

    torch.set_num_threads(args.threads)
    backbone = load_backbone("efficientnet-lite0")
    assert isinstance(backbone, ImageBackbone)
    backbone = at_image_size(backbone, args.image_size)
    done = {(r["seed"], r["task"], r["shots"], r["label"]) for r in _rows()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for task in args.tasks:
            for k in args.shots:
                for label, (method, options, head, train) in METHODS.items():
                    if (seed, task, k, label) in done:
                        continue
                    cfg = ExperimentConfig(
                        data=DataConfig(task=task, shots=k, data_seed=seed, max_test=args.max_test),
                        backbone="efficientnet-lite0", method=method, method_options=dict(options),
                        head=HeadConfig(**head), train=TrainConfig(max_steps=args.steps, eval_every=args.eval_every,
                                                                   batch_size=8, seed=seed, quiet=True,
                                                                   checkpoint_every=0, **train))
                    started = time.perf_counter()
                    result = run_experiment(cfg, backbone=backbone_for(method, backbone), baseline=False,
                                            log=lambda _: None)
                    row = {"seed": seed, "task": task, "shots": k, "label": label, "method": method,
                           "test_accuracy": result["test_accuracy"], "dev_accuracy": result["dev_accuracy"],
                           "trainable_params": result["trainable_params"], "steps": result["steps"],
                           "seconds_per_step": result["seconds_per_step"],
                           "wall_seconds": time.perf_counter() - started, "image_size": args.image_size,
                           "max_test": args.max_test}
                    with RESULTS.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


def _rows() -> list[dict[str, Any]]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]


def table() -> str:
    """Mean ± standard deviation of test accuracy (%) over seeds per task, method and K (one row per
    seed, task, K and method: the first written, should parallel runs have repeated one)."""
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in _rows():
        first.setdefault((r["seed"], r["task"], r["shots"], r["label"]), r)
    rows = list(first.values())
    lines = ["| task | method | trainable params | " + " | ".join(f"K={k}" for k in (1, 4, 16)) + " | s/step |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for task in ("mnist5k", "digits"):
        for label in METHODS:
            mine = [r for r in rows if r["task"] == task and r["label"] == label]
            if not mine:
                continue
            cells = []
            for k in (1, 4, 16):
                acc = [100 * r["test_accuracy"] for r in mine if r["shots"] == k]
                if not acc:
                    cells.append("-")
                    continue
                spread = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
                cells.append(f"{statistics.mean(acc):.1f}{spread} (n={len(acc)})")
            steps = [r["seconds_per_step"] for r in mine if r["steps"]]
            step = f"{statistics.mean(steps):.2f}" if steps else "-"
            lines.append(f"| {task} | {label} | {mine[0]['trainable_params']:,} | " + " | ".join(cells) + f" | {step} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["mnist5k", "digits"])
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 21, 42, 87, 100])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="print the markdown table of the results so far")
    args = parser.parse_args()
    if args.table:
        print(table(), end="")
    else:
        run(args)


if __name__ == "__main__":
    main()
