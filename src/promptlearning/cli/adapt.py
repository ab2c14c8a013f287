"""`promptlearning adapt`: take a cross-task adapter to a task it has not seen."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from promptlearning.cli.options import add_config_flag, add_dataclass_flags, flat_config, parse_label_words
from promptlearning.configs import option
from promptlearning.errors import ConfigError

ADAPT_EXAMPLES = """examples:
  promptlearning adapt --from runs/multi/best --task subj --shots 4
  promptlearning adapt --from runs/multi/best --task hedge --shots 0              # from its description alone
  promptlearning adapt --from runs/multi/best --train-file mine.csv --description "Is the ticket urgent?" --shots 8
  promptlearning adapt --from runs/multi/best --train-file mine.csv --label-words '{0: [routine], 1: [urgent]}'
  promptlearning adapt --config adapt.yaml --shots 8                               # flags override the file
"""


@dataclass
class AdaptOptions:
    """The options of `adapt` (the YAML keys of its --config file; `from:` names the adapter too)."""

    adapter: str | None = option(None, "adapter trained with --tasks (e.g. runs/multi/best)")
    task: str | None = option(None, "registered task not among the adapter's tasks")
    train_file: str | None = option(None, "your own CSV/TSV/JSONL task instead")
    test_file: str | None = option(None, "your own test data (else a fixed part of --train-file is held out)")
    text_column: str = option("text", "column with the text")
    label_column: str = option("label", "column with the label")
    description: str | None = option(None, "one sentence saying what to decide (needed for description-based "
                                           "adapters)")
    label_words: Any = option(None, "words for the new task's labels, e.g. '{0: [bad], 1: [good]}' "
                                    "(default: the label names)")
    shots: int = option(4, "K examples per class to adapt on; 0 scores without adapting")
    steps: int = option(30, "adaptation steps")
    lr: float | None = option(None, "learning rate (default: the method's)")
    data_seed: int = option(13, "seed of the K-shot sample")
    max_test: int = option(500, "score on a fixed random subset of N test examples")
    backbone: str | None = option(None, "backbone to load the adapter onto (default: the one it names)")
    device: str | None = option(None, "cpu or cuda (default: where the backbone loads)")
    output: str | None = option(None, "save the adapter, now serving the new task too, in this directory")
    quiet: bool = option(False, "no progress bar")


def adapt_options(args: argparse.Namespace) -> AdaptOptions:
    """The options of `adapt`: defaults < --config file (`from:` may name the adapter) < flags."""
    options: AdaptOptions = flat_config(AdaptOptions, args, file_aliases={"from": "adapter", "max_steps": "steps"})[0]
    return options


def labels_carry_no_meaning(labels: list[str]) -> bool:
    """Label names a head cannot read a meaning into: all numbers or single characters (0/1, a/b)."""
    return all(name.strip().lstrip("+-").isdigit() or len(name.strip()) <= 1 for name in labels)


def adapt_warnings(labels: list[str], has_label_words: bool, task_repr: str | None,
                   no_description: bool) -> list[str]:
    """Why an adaptation would likely score at chance, one line each: the heads and task representations
    read label names and descriptions, so names like 0/1 or a missing description tell them nothing."""
    out = []
    if labels_carry_no_meaning(labels) and not has_label_words:
        example = ", ".join(f"{name}: [word]" for name in labels[:2])
        out.append(f"the labels {', '.join(labels)} carry no meaning for the head; give words for them with "
                   f"--label-words \"{{{example}}}\"")
    if task_repr == "description" and no_description:
        out.append("this adapter represents a task by its description and your data has none; "
                   "give one sentence with --description")
    return out


def cmd_adapt(args: argparse.Namespace) -> int:
    from promptlearning.cli.loading import load_model
    from promptlearning.data import load_task, load_user_task
    from promptlearning.runs.multitask import adapt_to_task

    o = adapt_options(args)
    if not o.adapter:
        raise ConfigError("give the cross-task adapter to adapt with --from DIR (e.g. runs/multi/best)")
    if bool(o.task) == bool(o.train_file):
        raise ConfigError("give the unseen task with --task NAME or --train-file FILE (one of them)")
    model = load_model(o.adapter, o.backbone, device=o.device)
    if o.task:
        data = load_task(o.task)
    else:
        assert o.train_file is not None
        data = load_user_task(o.train_file, o.test_file, text_column=o.text_column,
                              label_column=o.label_column, description=o.description)
    for warning in adapt_warnings(data.labels, bool(o.label_words), model.method.task_repr_kind,
                                  bool(o.train_file) and not o.description):
        print(f"warning: {warning}", file=sys.stderr)
    served = [t.name for t in model.tasks]
    print(f"adapter {o.adapter} serves {', '.join(served)}; adapting to {data.name} with K={o.shots}")
    result = adapt_to_task(model, data, shots=o.shots, seed=o.data_seed, steps=o.steps, lr=o.lr,
                           max_test=o.max_test, description=o.description, quiet=o.quiet,
                           label_words=parse_label_words(o.label_words) if o.label_words else None)
    if o.output:
        model.save_pretrained(o.output, extra={"adapted_to": data.name, "shots": o.shots})
        print(f"adapter serving {', '.join(t.name for t in model.tasks)} saved to {o.output}")
    if result["steps"]:
        print(f"{result['task']}: before {result['before']:.4f}  after {result['after']:.4f}  "
              f"({result['after'] - result['before']:+.4f}, {result['adapt_seconds']:.1f} s)")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("adapt", help="adapt a cross-task adapter to an unseen task in a few steps (or K=0)",
                       epilog=ADAPT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flag(p)
    p.add_argument("--from", dest="adapter", default=argparse.SUPPRESS,
                   help="adapter trained with --tasks (e.g. runs/multi/best)")
    p.add_argument("--steps", "--max-steps", dest="steps", type=int, default=argparse.SUPPRESS,
                   help=f"adaptation steps (default: {AdaptOptions().steps})")
    add_dataclass_flags(p, AdaptOptions, skip=("adapter", "steps"))
    p.set_defaults(func=cmd_adapt)
    return p
