"""Data-parallel speed-up: rows/s of 2 processes x 1 thread against 1 process x 1 thread (issue 20).

Trains the same model (MR, 16 shots, P-tuning v2, no dropout, so both runs compute the same model)
as one process and as two processes under ``torchrun --nproc_per_node 2``, interleaved (one, two,
one, two, ...) so that a change in the machine's load hits both alike. Each run is this script in
``--worker`` mode calling ``run_experiment`` with a callback that times the training loop on rank 0:

* wall-clock rows/s: the rows of all optimizer steps over the trainer's own step time
  (``train_seconds``: forward, backward, the all-reduce, the optimizer step; no loading, no
  evaluation). On a machine shared with other jobs this mostly measures the scheduler's share:
  two processes get two shares of the cores, so the ratio can exceed 2.
* CPU seconds per step on rank 0 (``time.process_time`` over the loop): what one process spends
  on its half of each batch plus the all-reduce, independent of how busy the machine is. With one
  core per process and nothing else running, the speed-up would be the ratio of these, as long as
  waiting in the all-reduce costs no CPU (gloo blocks) and the ranks keep in step.

It also records the final dev/test accuracy of each run and the largest difference between the
one-process and two-process adapters, and the load average around every run.

    OMP_NUM_THREADS=1 python benchmarks/data_parallel_speed.py --out benchmarks/results/data_parallel
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def worker(args: argparse.Namespace) -> None:
    """One training run (one process, or one rank of two); rank 0 writes its timings next to the adapter."""
    from promptlearning.data.loading import DataConfig
    from promptlearning.heads.config import HeadConfig
    from promptlearning.runs.single_task import ExperimentConfig, run_experiment
    from promptlearning.training import TrainConfig, Trainer, TrainerCallback

    class LoopClock(TrainerCallback):
        """CPU and wall seconds of the training steps (the last step's record comes before its evaluation)."""

        def on_train_begin(self, trainer: Trainer) -> None:
            self.cpu, self.wall = time.process_time(), time.perf_counter()

        def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
            if record["step"] == trainer.config.max_steps:
                self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall

    clock = LoopClock()
    cfg = ExperimentConfig(
        data=DataConfig(task=args.task, shots=args.shots, max_test=args.max_test), backbone=args.backbone,
        method=args.method, head=HeadConfig(dropout=0.0), max_length=args.max_length, output_dir=args.worker,
        train=TrainConfig(batch_size=args.batch_size, max_steps=args.steps, eval_every=args.steps,
                          checkpoint_every=0, quiet=True))
    result = run_experiment(cfg, baseline=False, log=lambda *_: None, callbacks=[clock])
    from promptlearning.launcher import is_main_process

    if is_main_process():
        timing = {"loop_cpu_seconds": clock.cpu, "loop_wall_seconds": clock.wall,
                  "train_seconds": result["train_seconds"], "steps": result["steps"],
                  "dev_accuracy": result["dev_accuracy"], "test_accuracy": result["test_accuracy"]}
        (Path(args.worker) / "timing.json").write_text(json.dumps(timing))


def _run(launcher: list[str], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    argv = ["--worker", str(out), "--task", args.task, "--backbone", args.backbone, "--method", args.method,
            "--shots", str(args.shots), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
            "--max-length", str(args.max_length), "--max-test", str(args.max_test)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([*launcher, __file__, *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(launcher)} failed:\n{proc.stderr[-3000:]}")
    timing = json.loads((out / "timing.json").read_text())
    rows = timing["steps"] * args.batch_size
    return {"rows_per_s": rows / timing["train_seconds"], "cpu_seconds_per_step": timing["loop_cpu_seconds"] / timing["steps"],
            "command_wall_seconds": wall, "load_before": load_before, "load_after": os.getloadavg()[0], **timing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--task", default="mr")
    ap.add_argument("--method", default="p_tuning_v2")
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16, help="the global batch (8 rows per process with 2)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--max-test", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="pairs of (one process, two processes) runs")
    ap.add_argument("--out", default="benchmarks/results/data_parallel")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one training into this directory
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    from safetensors.torch import load_file

    launchers = {"1 process x 1 thread": [sys.executable],
                 "2 processes x 1 thread": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                            "--master_port", "29731"]}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in launchers}
    diffs = []
    record_path = Path(args.out).with_suffix(".json")
    record_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            dirs = {name: Path(tmp) / f"{i}-{r}" for i, name in enumerate(launchers)}
            for name, launcher in launchers.items():
                runs[name].append(_run(launcher, args, dirs[name]))
            a, b = (load_file(str(d / "best" / "adapter_model.safetensors")) for d in dirs.values())
            diffs.append(max(float((a[k] - b[k]).abs().max()) for k in a))
            print(f"pair {r + 1}: " + "; ".join(f"{name} {v[-1]['rows_per_s']:.1f} rows/s, "
                                                 f"{v[-1]['cpu_seconds_per_step']:.3f} CPU s/step"
                                                 for name, v in runs.items()), flush=True)
            summary = {name: {"median_rows_per_s": statistics.median(v["rows_per_s"] for v in values),
                              "median_cpu_seconds_per_step": statistics.median(v["cpu_seconds_per_step"] for v in values),
                              "runs": values} for name, values in runs.items()}
            record = {"args": {k: v for k, v in vars(args).items() if k != "worker"},
                      "wall_speedup": summary["2 processes x 1 thread"]["median_rows_per_s"]
                      / summary["1 process x 1 thread"]["median_rows_per_s"],
                      "cpu_projected_speedup": summary["1 process x 1 thread"]["median_cpu_seconds_per_step"]
                      / summary["2 processes x 1 thread"]["median_cpu_seconds_per_step"],
                      "max_adapter_difference": max(diffs), "pairs_done": r + 1, "runs": summary,
                      "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, python {platform.python_version()}"}
            record_path.write_text(json.dumps(record, indent=1) + "\n")  # after every pair: a killed run keeps its pairs
    print(f"wall-clock speed-up {record['wall_speedup']:.2f}x; CPU-projected {record['cpu_projected_speedup']:.2f}x; "
          f"largest adapter difference {max(diffs):.2e}")


if __name__ == "__main__":
    main()
