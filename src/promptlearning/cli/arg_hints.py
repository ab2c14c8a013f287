"""The flag a bare path on the command line was meant for: ``export runs/mr/best`` says ``--adapter``.

Commands take their adapter and files through flags, and argparse's own refusal of a bare path
("unrecognized arguments: runs/mr/best", or "required: --adapter" when that came first) does not say
so; a newcomer used to ``cmd PATH`` tools reads it as a broken path. The hint is added only for a path
that exists and fits the flag (a folder holding an adapter, a plain file), so it is never a guess.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"  # promptlearning.adapters.CONFIG_FILE (not imported: that loads torch)
FILE_FLAGS = ("--file", "--train-file", "--test-file")
UNRECOGNIZED = "unrecognized arguments:"


def _command_flags(parser: argparse.ArgumentParser, words: list[str]) -> set[str]:
    """The option strings of the command being parsed: the chosen sub-command's under the top parser."""
    parsers = [parser]
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its sub-commands only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            chosen = next((action.choices[w] for w in words if w in action.choices), None)
            parsers = [chosen] if chosen is not None else []
    return {flag for p in parsers for action in p._actions for flag in action.option_strings}  # noqa: SLF001


def bare_path_hint(parser: argparse.ArgumentParser, message: str, words: list[str]) -> str:
    """`` (an adapter folder is given as --adapter PATH)`` for a refusal caused by a bare path, else ``""``."""
    if message.startswith(UNRECOGNIZED):
        candidates = message[len(UNRECOGNIZED):].split()
    elif "arguments are required" in message and "--adapter" in message:
        candidates = words
    else:
        return ""
    flags = _command_flags(parser, words)
    for word in candidates:
        if word.startswith("-"):
            continue
        path = Path(word)
        if "--adapter" in flags and (path / ADAPTER_CONFIG).is_file():
            return f" (an adapter folder is given as --adapter {word})"
        takes_file = [flag for flag in FILE_FLAGS if flag in flags]
        if message.startswith(UNRECOGNIZED) and takes_file and path.is_file():
            return f" (a file is given as {' or '.join(f'{flag} {word}' for flag in takes_file)})"
    return ""
