"""The run directory a `train` writes to: never replace an earlier run's adapter or checkpoint unasked.

A killed long run is continued with ``--resume``; a rerun that forgot the flag used to start afresh in
the same folder and overwrite the best adapter and the checkpoint it could have resumed from. Now that
needs ``--overwrite``, and anything else is a one-line error naming the three ways on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError

#: what a finished or killed run leaves in its directory (a folder holding none of them is free to use)
RUN_FILES = ("best", "checkpoint", "results.json", "metrics.jsonl")
#: what a prompt search leaves (its journal is the evaluations a resume replays)
SEARCH_FILES = ("best", "journal.jsonl", "search_config.json", "results.json")


def earlier_run(output: str | Path, files: tuple[str, ...] = RUN_FILES) -> list[str]:
    """The files of an earlier run in ``output`` (empty when there is none)."""
    path = Path(output)
    return [name for name in files if (path / name).exists()]


def check_output_dir(output: str | Path | None, *, resume: bool, overwrite: bool,
                     files: tuple[str, ...] = RUN_FILES) -> None:
    """Refuse to start a fresh run over an earlier one unless ``overwrite``; ``--resume`` continues it."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --output and --overwrite replaces it: give one of them")
    if resume and output and not Path(output).is_dir():  # before the backbone loads: nothing there to continue
        raise ConfigError(f"--resume given but {output} does not exist, so it holds no checkpoint; drop --resume "
                          "to start the run there")
    if not output or resume or overwrite:
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output {path} is a file; give a directory for the run")
    found = earlier_run(path, files)
    if found:
        raise ConfigError(f"{path} already holds a run ({', '.join(found)}): continue it with --resume, choose "
                          "another --output, or add --overwrite to replace it")


def check_resume_settings(output: str | Path | None, method: str, train: dict[str, Any]) -> None:
    """Refuse a ``--resume`` whose method or training settings differ from its checkpoint's, before loading.

    The run itself compares the whole fingerprint once the backbone is loaded (minutes for a large one);
    a changed ``--lr`` or ``--max-steps`` is the common slip and is known from the command line alone.
    A missing or unreadable checkpoint is left to the run, which says what is wrong with it.
    """
    from promptlearning.training.checkpoint import META_FILE
    from promptlearning.training.fingerprint import early_changes
    from promptlearning.training.trainer import CHECKPOINT_DIR

    if not output:
        return
    try:
        saved = json.loads((Path(output) / CHECKPOINT_DIR / META_FILE).read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        return
    changes = early_changes(saved, method, train) if isinstance(saved, dict) else ""
    if changes:
        raise ConfigError(f"the checkpoint in {output} was made with other settings ({changes}); resume with the "
                          "same options, choose a new --output, or add --overwrite (without --resume) to start "
                          "afresh there")
