"""Subcommands of the meta subsystem (`inspect`, `continual`, `transfer`), registered on the main
CLI by :func:`add_commands`. Thin over :mod:`.inspect_prompts`, :mod:`.continual` and :mod:`.transfer`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError

INSPECT_EXAMPLES = """examples:
  promptlearning inspect runs/mr/best                         # a learned prompt: nearest tokens per position
  promptlearning inspect runs/gen/best --text "a gorgeous film" --text "my phone died"   # per-input prompts
  promptlearning inspect runs/gen/best --file reviews.txt --top 3 --json
"""


def _read_texts(args: argparse.Namespace) -> list[str]:
    texts = list(args.text or [])
    if args.file:
        try:
            texts += [ln for ln in Path(args.file).read_text().splitlines() if ln.strip()]
        except FileNotFoundError as exc:
            raise ConfigError(f"--file {args.file} does not exist; give a text file with one input per line") from exc
    return texts


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..backbones import load_backbone
    from ..model import PromptModel
    from .inspect_prompts import format_reports, inspect_prompts

    backbone = load_backbone(args.backbone) if args.backbone else None
    model = PromptModel.from_pretrained(args.adapter, backbone=backbone)
    reports = inspect_prompts(model, _read_texts(args), k=args.top)
    if args.json:
        print(json.dumps({"adapter": str(args.adapter), "method": type(model.method).name,
                          "sites": [r.to_dict() for r in reports]}))
    else:
        print(f"adapter {args.adapter}: method {type(model.method).name}, backbone {model.backbone.info.name}")
        print(format_reports(reports))
    return 0


def add_commands(sub: Any) -> None:
    """Register this subsystem's subcommands on the CLI's subparsers."""
    p = sub.add_parser("inspect", help="list the nearest vocabulary tokens of an adapter's prompt vectors",
                       description="Show, for every prompt position, the vocabulary tokens whose input embeddings "
                                   "are nearest (cosine). Learned prompts are shown once; methods that write a prompt "
                                   "per input (generator, spt) need --text or --file.",
                       epilog=INSPECT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("adapter", help="adapter directory (e.g. runs/mr/best)")
    p.add_argument("--backbone", default=None, help="backbone to load it on (default: the one it records)")
    p.add_argument("--text", action="append", help="an input to generate prompts for (repeatable)")
    p.add_argument("--file", help="text file, one input per line")
    p.add_argument("--top", type=int, default=5, help="nearest tokens per position")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_inspect)
