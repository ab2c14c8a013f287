"""`promptlearning inspect`: the nearest vocabulary tokens of an adapter's prompt vectors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from promptlearning.cli.loading import load_model
from promptlearning.cli.options import read_text_file

INSPECT_EXAMPLES = """examples:
  promptlearning inspect runs/mr/best                         # a learned prompt: nearest tokens per position
  promptlearning inspect runs/gen/best --text "a gorgeous film" --text "my phone died"   # per-input prompts
  promptlearning inspect runs/gen/best --file reviews.txt --top 3 --json
"""


def cmd_inspect(args: argparse.Namespace) -> int:
    from promptlearning.runs.inspect_prompts import format_reports, inspect_prompts

    model = load_model(args.adapter, args.backbone)
    lines = read_text_file(args.file, "--file", "a text file with one input per line").splitlines() if args.file else []
    texts = list(args.text or []) + [ln for ln in lines if ln.strip()]
    reports = inspect_prompts(model, texts, k=args.top)
    if texts and all(r.input is None for r in reports):  # a learned prompt is one for every input
        print(f"note: {type(model.method).name} places the same prompt before every input; --text/--file change "
              "nothing here", file=sys.stderr)
    if args.json:
        print(json.dumps({"adapter": str(args.adapter), "method": type(model.method).name,
                          "sites": [r.to_dict() for r in reports]}))
    else:
        print(f"adapter {args.adapter}: method {type(model.method).name}, backbone {model.backbone.info.name}")
        print(format_reports(reports))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
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
    return p
