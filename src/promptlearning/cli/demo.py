"""`promptlearning demo`: the README's main job in one command."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_demo(args: argparse.Namespace) -> int:
    from promptlearning.runs.demo import run_demo

    run_demo(output=args.output, steps=args.max_steps, quiet=args.quiet)
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="the main job: 16-shot P-tuning v2 on MR with MiniLM-L6, save, reload, classify")
    p.add_argument("--output", default="runs/demo", help="run directory")
    p.add_argument("--max-steps", type=int, default=150, help="training steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
    return p
