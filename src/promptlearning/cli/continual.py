"""`promptlearning continual`: learn tasks one at a time with a prompt library; report forgetting."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptlearning.cli.options import Route, add_config_flag, add_dataclass_flags, comma_list, flat_config
from promptlearning.errors import ConfigError

CONTINUAL_EXAMPLES = """examples:
  promptlearning continual mr,cr,subj,hedge --output runs/continual            # library start vs scratch
  promptlearning continual mr,cr,subj --steps 60 --sequential --output runs/c2  # plus the forgetting baseline
  promptlearning continual tweets,rt --library runs/continual/library --no-scratch   # grow an existing library
  promptlearning continual --config continual.yaml                             # tasks: [mr, cr] in the file
"""

# the flags whose name is not their config field's (shared with `transfer`)
RUN_ROUTES = {"output": Route(None, "output_dir"), "no_scratch": Route(None, "scratch", lambda given: not given)}
RUN_ALIASES = {"max_steps": "steps", "output": "output_dir"}


def add_run_flags(p: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                  choices: dict[str, Any] | None = None) -> None:
    """The flags continual and transfer share: their config's fields, with --output, --no-scratch and
    --steps (alias --max-steps) spelled as the other commands spell them."""
    add_config_flag(p)
    p.add_argument("--output", default=argparse.SUPPRESS, help="directory for the results (and adapters)")
    p.add_argument("--steps", "--max-steps", dest="steps", type=int, default=argparse.SUPPRESS,
                   help=f"training steps (default: {cls().steps})")
    p.add_argument("--no-scratch", action="store_true", default=argparse.SUPPRESS,
                   help="skip the from-scratch comparison run(s)")
    add_dataclass_flags(p, cls, skip=("output_dir", "steps", "scratch", *skip),
                        choices={"device": ("auto", "cpu", "cuda"), **(choices or {})})


def continual_config(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The ContinualConfig (file < flags) and the tasks in the order they are met."""
    from promptlearning.runs.continual import ContinualConfig

    cfg, extra = flat_config(ContinualConfig, args, routes=RUN_ROUTES, file_aliases=RUN_ALIASES,
                             extra_keys=("tasks",))
    if not extra.get("tasks"):
        raise ConfigError("name the tasks in the order they are met, e.g. `promptlearning continual mr,cr,subj`")
    return cfg, comma_list(extra["tasks"])


def cmd_continual(args: argparse.Namespace) -> int:
    from promptlearning.runs.continual import run_continual

    cfg, tasks = continual_config(args)
    run_continual(tasks, cfg)
    if cfg.output_dir:
        print(f"tables written to {Path(cfg.output_dir) / 'continual.md'}; "
              f"library in {cfg.library or Path(cfg.output_dir) / 'library'}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from promptlearning.data.task_info import REPR_KINDS
    from promptlearning.runs.continual import INITS, ContinualConfig

    p = sub.add_parser("continual", help="learn tasks one at a time with a prompt library; report forgetting and "
                                         "library start vs scratch",
                       description="Each task starts from the best-matching stored prompt(s), is trained (prompt "
                                   "tuning), stored, and every earlier task is re-scored from the library.",
                       epilog=CONTINUAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tasks", nargs="?", default=argparse.SUPPRESS,
                   help="comma-separated registered tasks in the order they are met, e.g. mr,cr,subj")
    p.add_argument("--repr", dest="repr_kind", choices=REPR_KINDS, default=argparse.SUPPRESS,
                   help=f"task representation used to find the best-matching stored prompt "
                        f"(default: {ContinualConfig().repr_kind})")
    add_run_flags(p, ContinualConfig, skip=("repr_kind",), choices={"init": INITS})
    p.set_defaults(func=cmd_continual)
    return p
