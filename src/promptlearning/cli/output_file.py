"""Where `predict` may write its table: never over its own input, an adapter's files or an earlier file unasked.

`--output mails.csv` with `--file mails.csv` used to replace the input with the predictions, and an output
inside an adapter folder replaced the adapter's config; both were silent. Each is now a one-line error
naming the fix, checked before the model loads."""

from __future__ import annotations

from pathlib import Path

from promptlearning.errors import ConfigError


def check_output_file(output: str | None, *, input_file: str | None, adapter: str | None, overwrite: bool) -> None:
    """Refuse an ``output`` that is a folder, the input file, inside the adapter folder, or (without
    ``overwrite``) a file that exists."""
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
    if path.exists() and not overwrite:
        raise ConfigError(f"--output {output} exists; add --overwrite to replace it, or choose another file")
