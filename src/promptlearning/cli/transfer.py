"""`promptlearning transfer`: train a target task starting from source-task prompts chosen by similarity."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptlearning.cli.continual import RUN_ALIASES, RUN_ROUTES, add_run_flags
from promptlearning.cli.options import flat_config
from promptlearning.errors import ConfigError

TRANSFER_EXAMPLES = """examples:
  promptlearning transfer --target cr --source runs/mr/best --source runs/subj/best --output runs/cr-from-best
  promptlearning transfer --target cr --source runs/mr/best --source runs/subj/best --by prompt
  promptlearning transfer --target cr --source runs/mr/best --source runs/subj/best --variant attention
  promptlearning transfer --config transfer.yaml --steps 30    # target: and source: [...] in the file
"""


def transfer_config(args: argparse.Namespace) -> tuple[Any, str, list[str], str | None]:
    """The TransferConfig (file < flags), the target task, the source adapters and the backbone name."""
    from promptlearning.runs.transfer import TransferConfig

    cfg, extra = flat_config(TransferConfig, args, routes=RUN_ROUTES, file_aliases={**RUN_ALIASES, "sources": "source"},
                             extra_keys=("target", "source", "backbone"))
    if not extra.get("target"):
        raise ConfigError("name the target task with --target NAME (see `promptlearning tasks`)")
    sources = extra.get("source") or []
    sources = [sources] if isinstance(sources, str) else sources
    return cfg, str(extra["target"]), [str(s) for s in sources], extra.get("backbone")


def cmd_transfer(args: argparse.Namespace) -> int:
    from promptlearning.backbones import load_backbone
    from promptlearning.runs.transfer import run_transfer

    cfg, target, sources, backbone = transfer_config(args)
    result = run_transfer(target, sources, cfg, backbone=load_backbone(backbone) if backbone else None)
    if cfg.output_dir:
        print(f"adapter saved to {result['adapter']}; tables in {Path(cfg.output_dir) / 'transfer.md'}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from promptlearning.runs.transfer import RANK_BY, VARIANTS, TransferConfig

    p = sub.add_parser("transfer", help="train a target task starting from source-task prompts chosen by similarity",
                       description="Rank prompt_tuning source adapters for a target task by task similarity, then "
                                   "train the target from the best source's prompt (or with attention over all "
                                   "sources) and compare with training from scratch.",
                       epilog=TRANSFER_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default=argparse.SUPPRESS, help="registered target task (see `promptlearning tasks`)")
    p.add_argument("--source", action="append", default=argparse.SUPPRESS,
                   help="a prompt_tuning adapter trained on a source task (repeatable)")
    p.add_argument("--backbone", default=argparse.SUPPRESS,
                   help="backbone (default: the one the first source records)")
    add_run_flags(p, TransferConfig, choices={"by": RANK_BY, "variant": VARIANTS})
    p.set_defaults(func=cmd_transfer)
    return p
