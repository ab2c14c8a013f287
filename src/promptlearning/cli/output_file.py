"""Where `predict` may write its table: never over its own input, an adapter's files or an earlier file unasked.

`--output mails.csv` with `--file mails.csv` used to replace the input with the predictions, and an output
inside an adapter folder replaced the adapter's config; both were silent. Each is now a one-line error
naming the fix, checked before the model loads."""

from __future__ import annotations

from pathlib import Path

from promptlearning.cli.run_dir import RUN_FILES, earlier_run
from promptlearning.errors import ConfigError

#: files whose folder is an adapter or a checkpoint: no file of such a folder is ever a prediction table
SAVED_MARKERS = ("adapter_config.json", "trainer_state.json")


def _saved_by_promptlearning(target: Path) -> str | None:
    """What ``target`` would overwrite that a run saved (an adapter's, a checkpoint's or a run's own file)."""
    folder = target.parent
    marker = next((m for m in SAVED_MARKERS if (folder / m).is_file()), None)
    if marker is not None:
        return f"the {'adapter' if marker == SAVED_MARKERS[0] else 'checkpoint'} folder {folder}"
    if target.name in RUN_FILES and earlier_run(folder):
        return f"the run in {folder} (its {target.name})"
    return None


def check_output_file(output: str | None, *, input_file: str | None, adapter: str | None, overwrite: bool) -> None:
    """Refuse an ``output`` that is a folder, the input file, inside the adapter folder, a file of any saved
    adapter, checkpoint or run, or (without ``overwrite``) a file that exists."""
    if not output:
        return
    path = Path(output)
    if path.is_dir():
        raise ConfigError(f"--output {output} is a folder; give a file name, e.g. {path / 'predictions.csv'}")
    if not path.parent.is_dir():
        raise ConfigError(f"--output {output}: the folder {path.parent} does not exist; create it or write elsewhere")
    target = path.resolve()
    if input_file and Path(input_file).resolve() == target:
        raise ConfigError(f"--output {output} is the input --file: it would be replaced by the predictions; "
                          "write them to another file")
    if adapter and target.is_relative_to(Path(adapter).resolve()):
        raise ConfigError(f"--output {output} is inside the adapter folder {adapter}; write the predictions "
                          "elsewhere, so the adapter's own files stay as they were")
    saved = _saved_by_promptlearning(target)
    if saved is not None:  # even with --overwrite: a run's results are not replaced by a prediction table
        raise ConfigError(f"--output {output} would replace a file of {saved}; write the predictions elsewhere")
    if path.exists() and not overwrite:
        raise ConfigError(f"--output {output} exists; add --overwrite to replace it, or choose another file")
