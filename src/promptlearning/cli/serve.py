"""`promptlearning serve`: many adapters on one frozen backbone over HTTP (FastAPI + uvicorn).

Safe by default: it binds 127.0.0.1; ``--api-key`` (or PROMPTLEARNING_API_KEY) guards every endpoint
and is required for the admin ones (load/unload); run-time loads come only from ``--adapters-dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from promptlearning.cli.options import add_config_flag, add_dataclass_flags, flat_config
from promptlearning.configs import option
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


#: characters per text when --max-chars is not given: for text, and for an image as a data URI (~750 KB of PNG)
TEXT_MAX_CHARS = 2000
IMAGE_MAX_CHARS = 1_000_000


@dataclass
class ServeConfig:
    """Everything `promptlearning serve` reads, from flags or a --config YAML file (flags win)."""

    backbone: str = option("", "the frozen backbone every adapter was made on (required, no default)")
    adapter: list[str] = option([], "NAME=PATH adapters to serve (repeatable); PATH inside --adapters-dir if given")
    adapters_dir: str | None = option(None, "the only folder adapters load from (also at run time, by admins)")
    host: str = option("127.0.0.1", "address to bind (loopback only by default)")
    port: int = option(8000, "port to listen on")
    api_key: str | None = option(None, f"required on every endpoint when set, on admin ones always (or {API_KEY_ENV})")
    device: str = option("auto", "auto (CUDA when present), cpu or cuda[:N]")
    max_batch_size: int = option(32, "rows per forward, all adapters together")
    max_wait_ms: float = option(5.0, "how long the first queued row waits for others")
    max_texts: int = option(64, "texts per request")
    max_chars: int | None = option(None, "characters per text (default 2000; for an image backbone, whose texts are "
                                         "data-URI images, 1,000,000)")
    max_queue: int = option(1024, "rows waiting, all requests together")
    timeout_s: float = option(30.0, "seconds from a request's arrival to its answer")
    max_new_tokens: int = option(64, "the most tokens one generate request may ask")
    one_adapter_per_batch: bool = option(False, "batch only rows of one adapter together (the baseline)")
    log_level: str = option("info", "uvicorn's log level: critical, error, warning, info, debug")


def build(config: ServeConfig) -> tuple[Any, Any]:
    """The engine and the app ``config`` describes (loads the backbone and every --adapter)."""
    try:
        from promptlearning.serving.app import create_app
    except ImportError as exc:
        raise ConfigError(f"serving needs the serve extra ({exc.name} is missing); "
                          "pip install 'promptlearning[serve]'") from exc
    from promptlearning.backbones import load_backbone
    from promptlearning.devices import resolve_device
    from promptlearning.image_backbones import is_image_backbone
    from promptlearning.serving import PromptServer, ServingLimits

    if not config.backbone:
        raise ConfigError("give --backbone NAME (the backbone the adapters were made on)")
    limits = ServingLimits(max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms,
                           max_texts=config.max_texts, max_chars=config.max_chars or TEXT_MAX_CHARS,
                           max_queue=config.max_queue, timeout_s=config.timeout_s, max_new_tokens=config.max_new_tokens)
    adapters = parse_adapters(config.adapter)
    if not adapters and not config.adapters_dir:
        raise ConfigError("nothing to serve; give --adapter NAME=PATH (repeatable) or --adapters-dir DIR "
                          "to load adapters at run time")
    if config.adapters_dir and not os.path.isdir(config.adapters_dir):
        raise ConfigError(f"--adapters-dir {config.adapters_dir} is not a folder; give the folder holding adapters")
    backbone = load_backbone(config.backbone)
    backbone.model.to(resolve_device(config.device))
    if config.max_chars is None and is_image_backbone(backbone):
        limits = dataclasses.replace(limits, max_chars=IMAGE_MAX_CHARS)
    server = PromptServer(backbone, adapters, adapters_dir=config.adapters_dir, limits=limits,
                          cross_adapter=not config.one_adapter_per_batch)
    api_key = config.api_key or os.environ.get(API_KEY_ENV) or None
    return server, create_app(server, api_key=api_key)


def check_port(port: int) -> None:
    """uvicorn answered --port 99999 with an asyncio traceback; checked before anything loads."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65535, or 0 for any free port (got {port})")


def check_address(host: str, port: int) -> None:
    """Refuse an address that cannot be bound (a port in use: uvicorn's own exit status 3) in one line;
    ``port`` has passed :func:`check_port` (cmd_serve checks it before anything loads)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # gaierror; UnicodeError: a name IDNA cannot encode (a label too long)
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConfigError(f"--host {host[:60]} is not an address this machine can bind ({why}); "
                          "use 127.0.0.1 (the default)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port, or stop what "
                              "holds it") from None


def cmd_serve(args: argparse.Namespace) -> int:
    config, _ = flat_config(ServeConfig, args)
    check_port(config.port)
    server, app = build(config)
    import uvicorn

    try:
        check_address(config.host, config.port)
        uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level)
    finally:
        server.close()
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="serve many adapters of one backbone over HTTP, rows of different adapters "
                                     "batched together")
    add_config_flag(p)
    add_dataclass_flags(p, ServeConfig, skip=("adapter",))
    p.add_argument("--adapter", dest="adapter", action="append", metavar="NAME=PATH", default=argparse.SUPPRESS,
                   help="an adapter to serve under NAME (repeatable); PATH is inside --adapters-dir when given")
    p.set_defaults(func=cmd_serve)
    return p
