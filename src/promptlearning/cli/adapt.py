"""`promptlearning adapt`: take a cross-task adapter to a task it has not seen."""

from __future__ import annotations

import argparse
from typing import Any

ADAPT_EXAMPLES = """examples:
  promptlearning adapt --from runs/multi/best --task subj --shots 4
  promptlearning adapt --from runs/multi/best --task hedge --shots 0              # from its description alone
  promptlearning adapt --from runs/multi/best --train-file mine.csv --description "Is the ticket urgent?" --shots 8
  promptlearning adapt --from runs/multi/best --train-file mine.csv --label-words '{0: [routine], 1: [urgent]}'
"""


def cmd_adapt(args: argparse.Namespace) -> int:
    from promptlearning.cli.main import _parse_label_words
    from promptlearning.data import load_task, load_user_task
    from promptlearning.errors import ConfigError
    from promptlearning.model import PromptModel
    from promptlearning.runs.multitask import adapt_to_task

    if bool(args.task) == bool(args.train_file):
        raise ConfigError("give the unseen task with --task NAME or --train-file FILE (one of them)")
    backbone = None
    if args.backbone:
        from promptlearning.backbones import load_backbone

        backbone = load_backbone(args.backbone)
    model = PromptModel.from_pretrained(args.adapter, backbone=backbone, device=args.device)
    if args.task:
        data = load_task(args.task)
    else:
        data = load_user_task(args.train_file, args.test_file, text_column=args.text_column,
                              label_column=args.label_column, description=args.description)
    served = [t.name for t in model.tasks]
    print(f"adapter {args.adapter} serves {', '.join(served)}; adapting to {data.name} with K={args.shots}")
    result = adapt_to_task(model, data, shots=args.shots, seed=args.data_seed, steps=args.steps, lr=args.lr,
                           max_test=args.max_test, description=args.description, quiet=args.quiet,
                           label_words=_parse_label_words(args.label_words) if args.label_words else None)
    if args.output:
        model.save_pretrained(args.output, extra={"adapted_to": data.name, "shots": args.shots})
        print(f"adapter serving {', '.join(t.name for t in model.tasks)} saved to {args.output}")
    if result["steps"]:
        print(f"{result['task']}: before {result['before']:.4f}  after {result['after']:.4f}  "
              f"({result['after'] - result['before']:+.4f}, {result['adapt_seconds']:.1f} s)")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("adapt", help="adapt a cross-task adapter to an unseen task in a few steps (or K=0)",
                       epilog=ADAPT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="adapter", required=True, help="adapter trained with --tasks (e.g. runs/multi/best)")
    p.add_argument("--task", help="registered task not among the adapter's tasks")
    p.add_argument("--train-file", help="your own CSV/TSV/JSONL task instead")
    p.add_argument("--test-file", help="your own test data (else a fixed part of --train-file is held out)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--description", help="one sentence saying what to decide (needed for description-based adapters)")
    p.add_argument("--label-words", metavar="YAML",
                   help="words for the new task's labels, e.g. '{0: [bad], 1: [good]}' (default: the label names)")
    p.add_argument("--shots", type=int, default=4, help="K examples per class to adapt on; 0 scores without adapting")
    p.add_argument("--steps", "--max-steps", dest="steps", type=int, default=30, help="adaptation steps")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the method's)")
    p.add_argument("--data-seed", type=int, default=13, help="seed of the K-shot sample")
    p.add_argument("--max-test", type=int, default=500, help="score on a fixed random subset of N test examples")
    p.add_argument("--backbone", help="backbone to load the adapter onto (default: the one it names)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: where the backbone loads)")
    p.add_argument("--output", help="save the adapter, now serving the new task too, in this directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_adapt)
