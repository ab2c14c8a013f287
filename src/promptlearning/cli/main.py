"""`promptlearning` command line: thin over the library.

The commands are listed in :mod:`promptlearning.cli.commands`, one module each; their options
come from flags or a YAML file (``--config``), flags winning, through
:mod:`promptlearning.cli.options`. Method options are generic (``--option key=value``), so a
new method needs no CLI change. Errors a user can cause print one line and exit non-zero,
with no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import ClassVar, NoReturn

from promptlearning.cli.arg_hints import bare_path_hint
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


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line naming the fix, like every other error of the CLI
    (argparse's own print the usage block first). Sub-commands' parsers inherit the class."""

    #: the command line being parsed, for :func:`~promptlearning.cli.arg_hints.bare_path_hint`
    words: ClassVar[list[str]] = []

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split()) + bare_path_hint(self, message, self.words)
        self.exit(2, f"error: {text}; see `{self.prog} --help`\n")


def build_parser(only: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just those commands get their options, the others a
    placeholder carrying their one-line summary.

    Some commands import torch (and transformers) to list their choices, which costs seconds;
    ``main`` builds only the command on its command line, so ``--help``, ``--version`` and the
    listings answer at once."""
    from promptlearning.version import __version__

    parser = OneLineParser(
        prog="promptlearning",
        description="Adapt a frozen pretrained transformer to text tasks by learning small prompts.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"promptlearning {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None if only is None else set(only)
    for command in COMMANDS:
        if wanted is None or command.name in wanted or not command.summary:
            command.add_parser(sub)
        else:
            sub.add_parser(command.name, help=command.summary)
    return parser


def _command_named(argv: Sequence[str]) -> list[str]:
    """The command the arguments name (the first word; the top level has only --help and --version)."""
    return [argv[0]] if argv and not argv[0].startswith("-") else []


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers reads these when (if) a command imports it: no warnings, no download bars; importing it
    # here to set them costs seconds that `--help` or a listing should not pay
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already loaded by a Python caller: its settings are read, set them
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    arguments = sys.argv[1:] if argv is None else list(argv)
    undecodable = next((a for a in arguments if _not_utf8(a)), None)
    if undecodable is not None:
        shown = undecodable.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        print(f"error: the argument {shown!r} is not valid UTF-8 text; re-encode it (e.g. with iconv -t utf-8)",
              file=sys.stderr)
        return 2
    _strict_stdin()
    parser = build_parser(only=_command_named(arguments))
    OneLineParser.words = arguments
    args = parser.parse_args(arguments)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        _join_launch(args.command)
        code = int(args.func(args))
        _flush_stdout()  # a full or failing output fails here, in one line, not at the interpreter's exit
        return code
    except PromptLearningError as exc:
        from promptlearning.launcher import is_main_process

        if is_main_process():  # the launched processes share the run's options: one says it for all
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `promptlearning methods | head`: the reader left, which is not an error
        _silence_stdout()
        return 0
    except UnicodeDecodeError as exc:  # input read as text that is not UTF-8 (lines piped to stdin)
        print(f"error: the input is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
              "re-encode it (e.g. with iconv -t utf-8)", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused a read or write (a full disk or output, a device error)
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        _silence_stdout()
        return 2
    except KeyboardInterrupt:
        print("interrupted; saved adapters and checkpoints are intact (a killed train continues with --resume)",
              file=sys.stderr)
        return 130


def _join_launch(command: str) -> None:
    """Under torchrun or accelerate launch: refuse what would run N silent copies (see
    :func:`promptlearning.launcher.check_launch`), and let only rank 0 print (the others' standard
    output goes to /dev/null and their progress bars are off; errors still reach the standard error)."""
    from promptlearning.launcher import check_launch, is_main_process

    check_launch(command)
    if not is_main_process():
        os.environ["TQDM_DISABLE"] = "1"
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def _strict_stdin() -> None:
    """Read piped input as strict UTF-8: under a C or POSIX locale Python would smuggle undecodable bytes
    in as lone surrogates, which fail later, deep in a tokenizer, with a traceback."""
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not a text stream (a test's), or closed
        sys.stdin.reconfigure(encoding="utf-8", errors="strict")  # type: ignore[union-attr]


def _not_utf8(text: str) -> bool:
    """Whether an argument held bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class StdoutError(OSError):
    """The standard output refused what the command printed (a full disk, ``> /dev/full``)."""


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise StdoutError(exc.errno, exc.strerror) from exc


def _os_error_line(exc: OSError) -> str:
    why = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, StdoutError):
        return f"cannot write to the standard output ({why}); free space where it goes, or send it elsewhere"
    if exc.filename:
        return f"cannot use {exc.filename} ({why}); check the path, its permissions and the free space"
    return f"cannot write ({why}); free space where the output goes (the standard output or --output)"


def _silence_stdout() -> None:
    """Point a failing standard output at /dev/null, so the interpreter's final flush adds no second error."""
    try:
        sys.stdout.flush()
        return
    except (OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): replace the object
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the interpreter exits


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
