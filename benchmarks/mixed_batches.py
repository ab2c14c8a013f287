"""Rows per second: one batch mixing 4 adapters against 4 separate passes (inference).

    python benchmarks/mixed_batches.py --backbone minilm-l6 --rows 32 --length 64 --prompt 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from promptlearning import PromptModel, load_backbone
from promptlearning.data.batching import Batch
from promptlearning.mixture import AdapterMixture


def _median_seconds(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--method", default="prompt_tuning")
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/mixed_batches")
    args = ap.parse_args()
    torch.manual_seed(0)
    backbone = load_backbone(args.backbone)
    models = [PromptModel.build(backbone, args.method, ["a", "b"],
                                method_options={"num_tokens": args.prompt, "init_seed": i}).eval()
              for i in range(args.adapters)]
    mixture = AdapterMixture(models).eval()
    n, per = args.rows, args.rows // args.adapters
    ids = torch.randint(1000, 20000, (n, args.length))
    task_ids = torch.arange(n) % args.adapters
    mask = torch.ones_like(ids)
    mixed = Batch(ids, mask, task_ids)
    separate = [Batch(ids[task_ids == a], mask[task_ids == a], torch.zeros(per, dtype=torch.long))
                for a in range(args.adapters)]
    with torch.no_grad():
        t_mixed = _median_seconds(lambda: mixture(mixed), args.repeats)
        t_sep = _median_seconds(lambda: [m(b) for m, b in zip(models, separate, strict=True)], args.repeats)
    rows = {"mixed_batch_rows_per_s": n / t_mixed, "separate_passes_rows_per_s": n / t_sep, "speedup": t_sep / t_mixed}
    machine = f"{platform.machine()}, {torch.get_num_threads()} CPU threads"
    lines = [f"# Mixed-adapter batch vs separate passes ({args.backbone}, {args.method}, P={args.prompt})", "",
             f"{args.adapters} adapters, {n} rows of {args.length} tokens ({per} per adapter), inference, "
             f"median of {args.repeats}. Machine: {machine}; torch {torch.__version__}.", "",
             f"Command: `python benchmarks/mixed_batches.py --backbone {args.backbone} --rows {n} "
             f"--length {args.length} --prompt {args.prompt}`", "",
             "| setting | rows/s |", "|---|---:|",
             f"| one mixed batch ({n} rows, {args.adapters} adapters) | {rows['mixed_batch_rows_per_s']:.1f} |",
             f"| {args.adapters} separate passes of {per} rows | {rows['separate_passes_rows_per_s']:.1f} |", "",
             f"Speed-up of the mixed batch: {rows['speedup']:.2f}x."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "machine": machine, **rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
