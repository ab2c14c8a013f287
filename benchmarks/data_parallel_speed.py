"""Data-parallel speed-up: rows/s of 2 processes x 1 thread against 1 process x 1 thread (issue 20).

Runs the same `promptlearning train` (MR, 16 shots, P-tuning v2, no dropout so both runs compute the
same model) once as one process and once under ``torchrun --nproc_per_node 2``, interleaved
(one, two, one, two, ...) so a change in the machine's load hits both alike. Training throughput is
the rows of all optimizer steps over the trainer's own step time (``train_seconds`` in results.json:
forward, backward, the all-reduce and the optimizer step; no evaluation, no loading). It also
reports the wall time of the whole command, the final dev/test accuracy of each run and the largest
difference between the two final adapters. The load average is recorded around every run.

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

from safetensors.torch import load_file


def _train(launcher: list[str], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    argv = ["train", "--task", args.task, "--backbone", args.backbone, "--method", args.method,
            "--shots", str(args.shots), "--batch-size", str(args.batch_size), "--max-steps", str(args.steps),
            "--eval-every", str(args.steps), "--checkpoint-every", "0", "--max-length", str(args.max_length),
            "--max-test", str(args.max_test), "--head-dropout", "0", "--no-baseline", "--quiet",
            "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([*launcher, "-m", "promptlearning", *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(launcher)} failed:\n{proc.stderr[-3000:]}")
    result = json.loads((out / "results.json").read_text())["results"]
    rows = result["steps"] * args.batch_size
    return {"rows_per_s": rows / result["train_seconds"], "train_seconds": result["train_seconds"],
            "wall_seconds": wall, "dev_accuracy": result["dev_accuracy"], "test_accuracy": result["test_accuracy"],
            "load_before": load_before, "load_after": os.getloadavg()[0]}


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
    ap.add_argument("--repeats", type=int, default=2, help="pairs of (one process, two processes) runs")
    ap.add_argument("--out", default="benchmarks/results/data_parallel")
    args = ap.parse_args()
    one_launcher = [sys.executable]
    two_launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29731"]
    runs: dict[str, list[dict[str, Any]]] = {"1 process x 1 thread": [], "2 processes x 1 thread": []}
    diffs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            one, two = Path(tmp) / f"one{r}", Path(tmp) / f"two{r}"
            runs["1 process x 1 thread"].append(_train(one_launcher, args, one))
            runs["2 processes x 1 thread"].append(_train(two_launcher, args, two))
            a = load_file(str(one / "best" / "adapter_model.safetensors"))
            b = load_file(str(two / "best" / "adapter_model.safetensors"))
            diffs.append(max(float((a[k] - b[k]).abs().max()) for k in a))
            print(f"pair {r + 1}: " + "; ".join(f"{name} {v[-1]['rows_per_s']:.1f} rows/s" for name, v in runs.items()),
                  flush=True)
    summary = {name: {"median_rows_per_s": statistics.median(v["rows_per_s"] for v in values),
                      "median_wall_seconds": statistics.median(v["wall_seconds"] for v in values), "runs": values}
               for name, values in runs.items()}
    speedup = summary["2 processes x 1 thread"]["median_rows_per_s"] / summary["1 process x 1 thread"]["median_rows_per_s"]
    record = {"args": vars(args), "speedup": speedup, "max_adapter_difference": max(diffs), "runs": summary,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
                         f"python {platform.python_version()}"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"speed-up {speedup:.2f}x; largest adapter difference {max(diffs):.2e}")


if __name__ == "__main__":
    main()
