"""`promptlearning` command line: thin over the library.

The commands are listed in :mod:`promptlearning.cli.commands`, one module each; their options
come from flags or a YAML file (``--config``), flags winning, through
:mod:`promptlearning.cli.options`. Method options are generic (``--option key=value``), so a
new method needs no CLI change. Errors a user can cause print one line and exit non-zero,
with no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from promptlearning.cli.commands import COMMANDS
from promptlearning.cli.options import experiment_from  # noqa: F401  (its old home: scripts import it from here)
from promptlearning.errors import PromptLearningError

EXAMPLES = """examples:
  promptlearning tasks
  promptlearning train --task mr --method p_tuning_v2 --shots 16 --output runs/mr
  promptlearning train --task cr --method prompt_tuning --option num_tokens=20 --option init=vocab --lr 0.03
  promptlearning train --train-file my.csv --text-column review --label-column stars --output runs/mine
  promptlearning train --config run.yaml --resume
  promptlearning train --tasks cr,mr --method multitask_prompt --distill-from cr=runs/cr/best,mr=runs/mr/best
  promptlearning evaluate --adapter runs/mr/best --task mr
  echo "a gorgeous, moving film" | promptlearning predict --adapter runs/mr/best
"""


def build_parser() -> argparse.ArgumentParser:
    from promptlearning.version import __version__

    parser = argparse.ArgumentParser(
        prog="promptlearning",
        description="Adapt a frozen pretrained transformer to text tasks by learning small prompts.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"promptlearning {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except PromptLearningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; saved adapters and checkpoints are intact (a killed train continues with --resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `promptlearning methods | head`: the reader left, which is not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
