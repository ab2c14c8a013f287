"""`promptlearning serve`: many adapters on one frozen backbone over HTTP (FastAPI + uvicorn).

Safe by default: it binds 127.0.0.1; ``--api-key`` (or PROMPTLEARNING_API_KEY) guards every endpoint
and is required for the admin ones (load/unload); run-time loads come only from ``--adapters-dir``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from promptlearning.errors import ConfigError

API_KEY_ENV = "PROMPTLEARNING_API_KEY"


def parse_adapters(specs: list[str]) -> dict[str, str]:
    """``name=PATH`` pairs; a name given twice is refused."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--adapter {spec!r} is not NAME=PATH; e.g. --adapter sst2=runs/sst2/best")
        if name in out:
            raise ConfigError(f"--adapter {name} is given twice; give each name once")
        out[name] = path
    return out


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """The engine and the app ``args`` describe (loads the backbone and every --adapter)."""
    try:
        from promptlearning.serving.app import create_app
    except ImportError as exc:
        raise ConfigError(f"serving needs the serve extra ({exc.name} is missing); "
                          "pip install 'promptlearning[serve]'") from exc
    from promptlearning.backbones import load_backbone
    from promptlearning.devices import resolve_device
    from promptlearning.serving import PromptServer, ServingLimits

    limits = ServingLimits(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                           max_texts=args.max_texts, max_chars=args.max_chars, max_queue=args.max_queue,
                           timeout_s=args.timeout_s, max_new_tokens=args.max_new_tokens)
    adapters = parse_adapters(args.adapter or [])
    if not adapters and not args.adapters_dir:
        raise ConfigError("nothing to serve; give --adapter NAME=PATH (repeatable) or --adapters-dir DIR "
                          "to load adapters at run time")
    if args.adapters_dir and not os.path.isdir(args.adapters_dir):
        raise ConfigError(f"--adapters-dir {args.adapters_dir} is not a folder; give the folder holding adapters")
    backbone = load_backbone(args.backbone)
    backbone.model.to(resolve_device(args.device))
    server = PromptServer(backbone, adapters, adapters_dir=args.adapters_dir, limits=limits,
                          cross_adapter=not args.one_adapter_per_batch)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    return server, create_app(server, api_key=api_key)


def cmd_serve(args: argparse.Namespace) -> int:
    server, app = build(args)
    import uvicorn

    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        server.close()
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="serve many adapters of one backbone over HTTP, rows of different adapters "
                                     "batched together")
    p.add_argument("--backbone", required=True, help="the frozen backbone every adapter was made on")
    p.add_argument("--adapter", action="append", metavar="NAME=PATH",
                   help="an adapter to serve under NAME (repeatable); PATH is inside --adapters-dir when given")
    p.add_argument("--adapters-dir", default=None,
                   help="the only folder adapters are loaded from (also at run time through the admin endpoints)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help=f"required on every endpoint when set, and for admin endpoints always (or {API_KEY_ENV})")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--max-batch-size", type=int, default=32, help="rows per forward, all adapters together")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long the first queued row waits for others")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request")
    p.add_argument("--max-chars", type=int, default=2000, help="characters per text")
    p.add_argument("--max-queue", type=int, default=1024, help="rows waiting, all requests together")
    p.add_argument("--timeout-s", type=float, default=30.0, help="seconds from a request's arrival to its answer")
    p.add_argument("--max-new-tokens", type=int, default=64, help="the most tokens one generate request may ask")
    p.add_argument("--one-adapter-per-batch", action="store_true",
                   help="batch only rows of the same adapter together (the baseline without cross-adapter batching)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
    return p
