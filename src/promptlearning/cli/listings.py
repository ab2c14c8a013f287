"""`promptlearning tasks`, `backbones` and `methods`: what the library knows, one line each."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any


def cmd_tasks(args: argparse.Namespace) -> int:
    from promptlearning.data import list_tasks, load_task

    for spec in list_tasks(None):
        line = f"{spec.name:8s} labels: {', '.join(spec.labels)}"
        if not args.no_sizes:
            data = load_task(spec.name)
            counts = data.counts("pool")
            line += f"  pool {len(data.pool)} ({', '.join(f'{k} {v}' for k, v in counts.items())}), test {len(data.test)}"
        print(line)
        print(f"         {spec.description}")
    _print_tagging_tasks(sizes=not args.no_sizes)
    _print_generation_tasks(sizes=not args.no_sizes)
    return 0


def _print_tagging_tasks(sizes: bool) -> None:
    """The tagging tasks after the sentence tasks: a tag per word rather than a label per text, so their
    sizes are sentences and words, K (--shots) counts sentences, and the score is word accuracy."""
    from promptlearning.data.tagging import TAGGED_TASKS, load_tagged_task

    print("Tagging tasks: a tag per word, not a label per text (train them with the token_classification head, the "
          "default for these); --shots K counts sentences; scored by word accuracy and macro-F1 over tags")
    for name in sorted(TAGGED_TASKS):
        line = f"{name:8s}"
        if sizes:
            data = load_tagged_task(name)
            words = {part: sum(len(s.words) for s in getattr(data, part)) for part in ("pool", "test")}
            common = Counter(data.tags[t] for s in data.pool for t in s.tags).most_common(5)
            line += (f" {len(data.tags)} tags (most frequent: {', '.join(t for t, _ in common)})  pool {len(data.pool)} sentences "
                     f"({words['pool']} words), test {len(data.test)} sentences ({words['test']} words)")
        print(line)
        print(f"         {TAGGED_TASKS[name].description}")


def _print_generation_tasks(sizes: bool) -> None:
    """The generation tasks last: a target text per input, trained with the language_modeling head on a causal LM."""
    from promptlearning.data.text_pairs import GENERATION_TASKS, load_generation_task

    print("Generation tasks: a target text per input (train them with the language_modeling head on a causal LM such "
          "as smollm2-135m, the default head for these); --shots K counts pairs; scored by exact match, token F1, "
          "ROUGE-L and BLEU")
    for name in sorted(GENERATION_TASKS):
        line = f"{name:8s}"
        if sizes:
            data = load_generation_task(name)
            line += f" pool {len(data.pool)} pairs, test {len(data.test)} pairs; template {data.template!r}"
        print(line)
        print(f"         {GENERATION_TASKS[name].description}")


def cmd_backbones(args: argparse.Namespace) -> int:
    from promptlearning.backbone_catalog import PACKAGED, aliases_of, facts_line

    width = max(map(len, PACKAGED))  # the longest name sets the column, so every description lines up
    for name in sorted(PACKAGED):
        aliases = aliases_of(name)
        print(f"{name:{width}s} {PACKAGED[name]}" + (f" (aliases: {', '.join(aliases)})" if aliases else ""))
        print(f"{'':{width}s} {facts_line(name)}")
    print("Any Hugging Face encoder (BERT, RoBERTa, DistilBERT, ELECTRA) or decoder (Llama, Mistral, Qwen, "
          "GPT-2) directory or hub id works too, and so does an image model's: ViT, DeiT or CLIP.")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from promptlearning.cli.method_catalog import listed_methods

    for entry in listed_methods():
        print(f"{entry.name:14s} {entry.summary}")
        for line in entry.option_lines:
            print(line)
    return 0


def add_tasks_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("tasks", help="list the registered tasks (sentence, tagging and generation) with labels and sizes")
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
