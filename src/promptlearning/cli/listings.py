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
    from promptlearning.backbones import ALIASES, list_backbones

    for entry in list_backbones():
        aliases = [a for a, t in ALIASES.items() if t == entry.name]
        print(f"{entry.name:12s} {entry.description}" + (f" (aliases: {', '.join(aliases)})" if aliases else ""))
    print("Any Hugging Face encoder (BERT, RoBERTa, DistilBERT, ELECTRA) or decoder (Llama, Mistral, Qwen, "
          "GPT-2) directory or hub id works too.")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from promptlearning.methods import list_methods

    for cls in list_methods():
        print(f"{cls.name:14s} {cls.summary}")
        for line in cls.config_class.option_lines():
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
