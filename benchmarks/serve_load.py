"""Load test of `promptlearning serve`: throughput and p50/p99 latency for 1, 8 and 64 adapters with uniformly
mixed traffic, against serving one adapter per batch (no cross-adapter batching).

A bounded async client (a fixed number of requests, at most --concurrency in flight) on loopback talks to a
real uvicorn server in this process. Adapters are untrained prompt_tuning adapters (vocabulary init, a
different seed each): serving cost does not depend on what a prompt learned.

    python benchmarks/serve_load.py --backbone minilm-l6 --requests 512 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import torch
import uvicorn

from promptlearning import PromptModel, load_backbone
from promptlearning.backbones import Backbone
from promptlearning.serving import PromptServer, ServingLimits
from promptlearning.serving.app import create_app

WORDS = ["the", "film", "was", "a", "great", "ride", "with", "fine", "acting", "and", "a", "dull", "middle", "part",
         "that", "drags", "on", "too", "long", "but", "the", "end", "makes", "up", "for", "it", "somehow"]  # as run


def make_adapters(backbone: Backbone, root: Path, count: int, tokens: int) -> dict[str, Path]:
    out = {}
    for i in range(count):
        model = PromptModel.build(backbone, "prompt_tuning", ["negative", "positive"],
                                  method_options={"num_tokens": tokens, "init_seed": i})
        out[f"a{i}"] = model.save_pretrained(root / f"a{i}")
    return out


def texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 24))) for _ in range(count)]


async def load(port: int, names: list[str], requests: int, concurrency: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    plan = [(rng.choice(names), t) for t in texts(requests, seed)]  # uniformly mixed adapters
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(adapter: str, text: str) -> None:
            async with gate:
                t = time.perf_counter()
                response = await client.post("/v1/classify", json={"adapter": adapter, "texts": [text]})
                response.raise_for_status()
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*[one(a, t) for a, t in plan[: min(32, requests)]])  # warm-up, not counted
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*[one(a, t) for a, t in plan])
        wall = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"rps": requests / wall, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "wall_s": wall}


def run_one(backbone: Backbone, adapters: dict[str, Path], cross: bool, args: argparse.Namespace) -> dict[str, float]:
    limits = ServingLimits(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=100_000,
                           timeout_s=600)
    server = PromptServer(backbone, adapters, limits=limits, cross_adapter=cross)
    web = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not (web.started and web.servers):
        time.sleep(0.01)
    port = web.servers[0].sockets[0].getsockname()[1]
    try:
        return asyncio.run(load(port, list(adapters), args.requests, args.concurrency, args.seed))
    finally:
        web.should_exit = True
        thread.join(60)


def machine(backbone: Backbone) -> str:
    device = backbone.input_embeddings().weight.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return (f"{platform.platform()}; {device.type} ({name}); {os.cpu_count()} CPUs visible, torch threads "
            f"{torch.get_num_threads()}; torch {torch.__version__}; load average at the end "
            f"{os.getloadavg()[0]:.1f} (other jobs on the machine slow every row alike)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--adapters", default="1,8,64")
    ap.add_argument("--requests", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--prompt-tokens", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/serve_load.md")
    args = ap.parse_args()
    from promptlearning.devices import resolve_device

    backbone = load_backbone(args.backbone)
    backbone.model.to(resolve_device(args.device))
    counts = [int(c) for c in args.adapters.split(",")]
    rows: list[tuple[int, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_adapters(backbone, Path(tmp), max(counts), args.prompt_tokens)
        for count in counts:
            chosen = dict(list(adapters.items())[:count])
            for cross in (True, False):
                mode = "mixed batches" if cross else "one adapter per batch"
                result = run_one(backbone, chosen, cross, args)
                rows.append((count, mode, result))
                print(f"{count:3d} adapters, {mode:22s}: {result['rps']:7.1f} req/s  p50 {result['p50_ms']:7.1f} ms"
                      f"  p99 {result['p99_ms']:7.1f} ms", flush=True)
    write_report(Path(args.out), rows, args, machine(backbone))


def write_report(path: Path, rows: list[tuple[int, str, dict[str, Any]]], args: argparse.Namespace,
                 where: str) -> None:
    by = {(c, m): r for c, m, r in rows}
    base = by.get((1, "mixed batches"))
    lines = ["# Serving load: many prompt adapters on one backbone", "",
             f"Command: `python benchmarks/serve_load.py --backbone {args.backbone} --adapters {args.adapters} "
             f"--requests {args.requests} --concurrency {args.concurrency} --max-batch-size {args.max_batch_size} "
             f"--max-wait-ms {args.max_wait_ms} --prompt-tokens {args.prompt_tokens} --device {args.device}`", "",
             f"Machine: {where}", "",
             f"Load: {args.requests} requests of one text each (8-24 words), adapter chosen uniformly at random per "
             f"request, at most {args.concurrency} in flight (httpx async client, loopback, same process as the "
             f"server), after 32 warm-up requests. Server: max batch {args.max_batch_size} rows, max wait "
             f"{args.max_wait_ms} ms. Adapters: untrained prompt_tuning, {args.prompt_tokens} tokens, "
             "vocabulary init with a different seed each.", "",
             "| adapters | batching | requests/s | p50 ms | p99 ms | vs 1 adapter |", "|---|---|---|---|---|---|"]
    for count, mode, r in rows:
        ratio = f"{r['rps'] / base['rps']:.2f}x" if base else "-"
        lines.append(f"| {count} | {mode} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {ratio} |")
    lines.append("")
    top = max(c for c, _, _ in rows)
    mixed, single = by.get((top, "mixed batches")), by.get((top, "one adapter per batch"))
    if base and mixed and single:
        a, b = mixed["rps"] / base["rps"], mixed["rps"] / single["rps"]
        lines += [f"Targets (issue 21), at {top} adapters:", "",
                  f"- throughput >= 0.8x the 1-adapter throughput: {a:.2f}x, {'met' if a >= 0.8 else 'NOT met'};",
                  f"- cross-adapter batching >= 3x one adapter per batch: {b:.2f}x, {'met' if b >= 3 else 'NOT met'}.",
                  ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
