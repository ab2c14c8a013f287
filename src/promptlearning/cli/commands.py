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
    export,
    generate,
    inspect_prompts,
    listings,
    predict,
    search,
    serve,
    train,
    transfer,
    tune,
)


@dataclass(frozen=True)
class Command:
    name: str
    add_parser: Callable[[Any], argparse.ArgumentParser]  # registers the command on the subparsers
    # its line in `promptlearning --help`: the listing is built from these alone, without calling the
    # add_parser functions (some import torch for their choices); empty: its parser is built for the listing
    summary: str = ""


COMMANDS: tuple[Command, ...] = (
    Command("tasks", listings.add_tasks_parser,
            "list the registered tasks with label names and sizes"),
    Command("backbones", listings.add_backbones_parser,
            "list the packaged backbones"),
    Command("methods", listings.add_methods_parser,
            "list the prompt methods and their options"),
    Command("train", train.add_parser,
            "few-shot train a prompt method and save the adapter"),
    Command("evaluate", evaluate.add_parser,
            "score a saved adapter on a task's test (or dev) split, or on your test file"),
    Command("predict", predict.add_parser,
            "classify texts (arguments, stdin, or a CSV/TSV/JSONL/text file) with a saved adapter"),
    Command("generate", generate.add_parser,
            "continue texts with a prompted causal LM adapter (e.g. on smollm2-135m)"),
    Command("demo", demo.add_parser,
            "the main job: 16-shot P-tuning v2 on MR with MiniLM-L6, save, reload, classify"),
    Command("bench", bench.add_bench_parser,
            "run a benchmark suite (tasks x methods x shots x seeds) into a resumable results store"),
    Command("report", bench.add_report_parser,
            "write report.md and PNG plots from a suite's results store"),
    Command("tune", tune.add_parser,
            "search a method's hyper-parameters with Optuna (resumable) and write the best as a train YAML"),
    Command("inspect", inspect_prompts.add_parser,
            "list the nearest vocabulary tokens of an adapter's prompt vectors"),
    Command("continual", continual.add_parser,
            "learn tasks one at a time with a prompt library; report forgetting and library start vs scratch"),
    Command("transfer", transfer.add_parser,
            "train a target task starting from source-task prompts chosen by similarity"),
    Command("adapt", adapt.add_parser,
            "adapt a cross-task adapter to an unseen task in a few steps (or K=0)"),
    Command("search", search.add_parser,
            "search readable or black-box prompts (evolution, rl, cma_es) and the discrete-to-soft hybrid"),
    Command("export", export.add_parser,
            "convert prompt_tuning/prefix_tuning adapters to Hugging Face PEFT's format, or PEFT's to ours"),
    Command("serve", serve.add_parser,
            "serve many adapters of one backbone over HTTP, rows of different adapters batched together"),
)
