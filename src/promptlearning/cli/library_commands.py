"""Subcommands of the meta subsystem (`inspect`, `continual`, `transfer`), registered on the main
CLI by :func:`add_commands`. Thin over :mod:`.inspect_prompts`, :mod:`.continual` and :mod:`.transfer`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError

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
    from promptlearning.backbones import load_backbone
    from promptlearning.model import PromptModel
    from promptlearning.runs.inspect_prompts import format_reports, inspect_prompts

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


CONTINUAL_EXAMPLES = """examples:
  promptlearning continual mr,cr,subj,hedge --output runs/continual            # library start vs scratch
  promptlearning continual mr,cr,subj --steps 60 --sequential --output runs/c2  # plus the forgetting baseline
  promptlearning continual tweets,rt --library runs/continual/library --no-scratch   # grow an existing library
"""


def cmd_continual(args: argparse.Namespace) -> int:
    from promptlearning.runs.continual import ContinualConfig, run_continual

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func", "tasks", "no_scratch", "output")}
    cfg = ContinualConfig(**values, scratch=not args.no_scratch, output_dir=args.output)
    run_continual(args.tasks.split(","), cfg)
    if args.output:
        print(f"tables written to {Path(args.output) / 'continual.md'}; library in {cfg.library or Path(args.output) / 'library'}")
    return 0


TRANSFER_EXAMPLES = """examples:
  promptlearning transfer --target cr --source runs/mr/best --source runs/subj/best --output runs/cr-from-best
  promptlearning transfer --target cr --source runs/mr/best --source runs/subj/best --by prompt
  promptlearning transfer --target cr --source runs/mr/best --source runs/subj/best --variant attention
"""


def cmd_transfer(args: argparse.Namespace) -> int:
    from promptlearning.backbones import load_backbone
    from promptlearning.runs.transfer import TransferConfig, run_transfer

    values = {k: v for k, v in vars(args).items()
              if k not in ("command", "func", "target", "source", "no_scratch", "output", "backbone")}
    cfg = TransferConfig(**values, scratch=not args.no_scratch, output_dir=args.output)
    result = run_transfer(args.target, args.source or [], cfg,
                          backbone=load_backbone(args.backbone) if args.backbone else None)
    if args.output:
        print(f"adapter saved to {result['adapter']}; tables in {Path(args.output) / 'transfer.md'}")
    return 0


def _add_run_flags(p: argparse.ArgumentParser, defaults: Any, steps_help: str) -> None:
    """The few-shot run flags continual and transfer share, with defaults from their config."""
    p.add_argument("--shots", type=int, default=defaults.shots, help="K examples per class")
    p.add_argument("--data-seed", type=int, default=defaults.data_seed, help="few-shot split seed")
    p.add_argument("--seed", type=int, default=defaults.seed, help="training seed")
    p.add_argument("--steps", "--max-steps", dest="steps", type=int, default=defaults.steps, help=steps_help)
    p.add_argument("--lr", type=float, default=None, help="prompt learning rate (default: the method's)")
    p.add_argument("--eval-every", type=int, default=defaults.eval_every, help="dev evaluation interval")
    p.add_argument("--max-length", type=int, default=defaults.max_length, help="max input tokens")
    p.add_argument("--max-test", type=int, default=None, help="score on a fixed random subset of N test examples")


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

    from promptlearning.data.task_info import REPR_KINDS
    from promptlearning.runs.continual import INITS, ContinualConfig

    d = ContinualConfig()
    p = sub.add_parser("continual", help="learn tasks one at a time with a prompt library; report forgetting and "
                                         "library start vs scratch",
                       description="Each task starts from the best-matching stored prompt(s), is trained (prompt "
                                   "tuning), stored, and every earlier task is re-scored from the library.",
                       epilog=CONTINUAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tasks", help="comma-separated registered tasks in the order they are met, e.g. mr,cr,subj")
    p.add_argument("--backbone", default=d.backbone, help="packaged name, local directory or hub id")
    p.add_argument("--output", default=None, help="directory for the library, continual.json and continual.md")
    p.add_argument("--library", default=None, help="library directory (default: OUTPUT/library); reused if it exists")
    _add_run_flags(p, d, "training steps per task")
    p.add_argument("--num-tokens", type=int, default=d.num_tokens, help="prompt length")
    p.add_argument("--repr", dest="repr_kind", choices=REPR_KINDS, default=d.repr_kind,
                   help="task representation used to find the best-matching stored prompt")
    p.add_argument("--init", choices=INITS, default=d.init,
                   help="nearest stored prompt, or a similarity-weighted mix of the top-k")
    p.add_argument("--top-k", type=int, default=d.top_k, help="prompts mixed by --init mix")
    p.add_argument("--no-scratch", action="store_true", help="skip the from-scratch comparison runs")
    p.add_argument("--sequential", action="store_true",
                   help="also run the forgetting baseline: one prompt carried across tasks")
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_continual)

    from promptlearning.runs.transfer import RANK_BY, VARIANTS, TransferConfig

    t = TransferConfig()
    p = sub.add_parser("transfer", help="train a target task starting from source-task prompts chosen by similarity",
                       description="Rank prompt_tuning source adapters for a target task by task similarity, then "
                                   "train the target from the best source's prompt (or with attention over all "
                                   "sources) and compare with training from scratch.",
                       epilog=TRANSFER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="registered target task (see `promptlearning tasks`)")
    p.add_argument("--source", action="append", help="a prompt_tuning adapter trained on a source task (repeatable)")
    p.add_argument("--backbone", default=None, help="backbone (default: the one the first source records)")
    p.add_argument("--by", choices=RANK_BY, default=t.by, help="rank sources by task representation or by prompt")
    p.add_argument("--variant", choices=VARIANTS, default=t.variant,
                   help="init: start from the best source's prompt; attention: mix every source per input")
    p.add_argument("--output", default=None, help="directory for the adapter, transfer.json and transfer.md")
    _add_run_flags(p, t, "target training steps")
    p.add_argument("--probe-steps", type=int, default=t.probe_steps, help="probe training steps for --by prompt")
    p.add_argument("--no-scratch", action="store_true", help="skip the from-scratch comparison run")
    p.add_argument("--device", default=t.device, choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_transfer)
