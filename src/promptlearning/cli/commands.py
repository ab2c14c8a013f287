"""The command table: every `promptlearning` command, in the order `--help` lists them, and the
module function that builds its parser (the parser's ``func`` runs it).

A new command is one module in this package (its ``add_parser(subparsers)`` and its ``cmd_*``
function, options through :mod:`promptlearning.cli.options`) plus one line here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptlearning.cli import (
    adapt,
    bench,
    continual,
    demo,
    evaluate,
    generate,
    inspect_prompts,
    listings,
    predict,
    search,
    train,
    transfer,
)


@dataclass(frozen=True)
class Command:
    name: str
    add_parser: Callable[[Any], argparse.ArgumentParser]  # registers the command on the subparsers


COMMANDS: tuple[Command, ...] = (
    Command("tasks", listings.add_tasks_parser),
    Command("backbones", listings.add_backbones_parser),
    Command("methods", listings.add_methods_parser),
    Command("train", train.add_parser),
    Command("evaluate", evaluate.add_parser),
    Command("predict", predict.add_parser),
    Command("generate", generate.add_parser),
    Command("demo", demo.add_parser),
    Command("bench", bench.add_bench_parser),
    Command("report", bench.add_report_parser),
    Command("inspect", inspect_prompts.add_parser),
    Command("continual", continual.add_parser),
    Command("transfer", transfer.add_parser),
    Command("adapt", adapt.add_parser),
    Command("search", search.add_parser),
)
