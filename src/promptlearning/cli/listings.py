"""`promptlearning tasks`, `backbones` and `methods`: what the library knows, one line each."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_tasks(args: argparse.Namespace) -> int:
    from promptlearning.data import list_tasks, load_task

    for spec in list_tasks():
        line = f"{spec.name:8s} labels: {', '.join(spec.labels)}"
        if not args.no_sizes:
            data = load_task(spec.name)
            counts = data.counts("pool")
            line += f"  pool {len(data.pool)} ({', '.join(f'{k} {v}' for k, v in counts.items())}), test {len(data.test)}"
        print(line)
        print(f"         {spec.description}")
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from promptlearning.backbone_catalog import PACKAGED, aliases_of, facts_line

    for name in sorted(PACKAGED):
        aliases = aliases_of(name)
        print(f"{name:12s} {PACKAGED[name]}" + (f" (aliases: {', '.join(aliases)})" if aliases else ""))
        print(f"{'':12s} {facts_line(name)}")
    print("Any Hugging Face encoder (BERT, RoBERTa, DistilBERT, ELECTRA) or decoder (Llama, Mistral, Qwen, "
          "GPT-2) directory or hub id works too.")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from promptlearning.cli.method_catalog import listed_methods

    for entry in listed_methods():
        print(f"{entry.name:14s} {entry.summary}")
        for line in entry.option_lines:
            print(line)
    return 0


def add_tasks_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("tasks", help="list the registered tasks with label names and sizes")
    p.add_argument("--no-sizes", action="store_true", help="do not load the corpora to count examples")
    p.set_defaults(func=cmd_tasks)
    return p


def add_backbones_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("backbones", help="list the packaged backbones")
    p.set_defaults(func=cmd_backbones)
    return p


def add_methods_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("methods", help="list the prompt methods and their options")
    p.set_defaults(func=cmd_methods)
    return p
