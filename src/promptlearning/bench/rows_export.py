"""`promptlearning report STORE --csv FILE / --json FILE`: every row of a results store, out of SQLite.

Why: a store is the only record of a sweep, and people want its numbers in a spreadsheet,
pandas or another tool without writing SQL. The export is lossless for JSON (each row with
its decoded ``config`` and ``result``) and flat for CSV: one column per store column, one
``result.NAME`` column per scalar result field (the union over rows, in first-seen order),
and non-scalar values (dev curves, the machine, the config) as JSON text in their cell.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from promptlearning.bench.store import ResultStore, store_path
from promptlearning.errors import ConfigError

#: the store's own columns, in the order both formats give them (the traceback is left out: it is long
#: and only for debugging; ``error`` holds its one line)
ROW_COLUMNS = ("key", "suite", "label", "task", "method", "shots", "seed", "backbone", "status", "attempts",
               "error", "created_at", "finished_at")
STDOUT = "-"


def read_rows(location: str | Path) -> list[dict[str, Any]]:
    """Every row of the store at ``location`` (a folder or its results.sqlite), config and result decoded."""
    path = store_path(location)
    if not path.is_file():
        raise ConfigError(f"no results store at {path}; run `promptlearning bench SUITE.yaml --store {path.parent}` "
                          "first")
    with ResultStore(path, create=False) as store:
        return store.rows()


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as plain JSON objects: the store's columns, then ``config`` and ``result`` as nested objects."""
    return [{**{c: row.get(c) for c in ROW_COLUMNS}, "config": row["config"], "result": row["result"]}
            for row in rows]


def _cell(value: Any) -> Any:
    """A CSV cell: scalars as they are, lists and mappings as compact JSON, None as empty."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "" if value is None else value


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV with a header: store columns, ``result.*`` columns, then the config as JSON."""
    result_keys = list(dict.fromkeys(k for row in rows for k in (row["result"] or {})))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*ROW_COLUMNS, *(f"result.{k}" for k in result_keys), "config"])
    for row in rows:
        result = row["result"] or {}
        writer.writerow([*(_cell(row.get(c)) for c in ROW_COLUMNS), *(_cell(result.get(k)) for k in result_keys),
                         _cell(row["config"])])
    return out.getvalue()


def is_export(path: Path) -> bool:
    """True when ``path`` holds an earlier export (CSV header or JSON rows of ours): safe to replace."""
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(200)
    except (OSError, UnicodeDecodeError):
        return False
    return head.startswith(",".join(ROW_COLUMNS[:4]) + ",") or head.startswith('[\n {\n  "key": ') \
        or head == "[]\n"


def write_export(text: str, target: str) -> str:
    """Write ``text`` to ``target`` (``-``: standard output); returns where it went.

    An existing file is replaced only when it is an earlier export: a user's other file is never lost."""
    if target == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output"
    path = Path(target)
    if path.is_dir():
        raise ConfigError(f"{target} is a folder; give a file name for the export")
    if path.exists() and not is_export(path):
        raise ConfigError(f"{target} exists and is not an export of a results store; give a new file name")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {target} ({exc.strerror or exc}); give a writable file path") from None
    return str(path)


def export_rows(location: str | Path, *, csv_target: str | None = None, json_target: str | None = None) -> list[str]:
    """Write the store's rows as CSV and/or JSON; returns where each went."""
    rows = read_rows(location)
    written = []
    if csv_target is not None:
        written.append(write_export(csv_text(rows), csv_target))
    if json_target is not None:
        written.append(write_export(json.dumps(json_rows(rows), indent=1, sort_keys=False) + "\n", json_target))
    return written


__all__ = ["ROW_COLUMNS", "csv_text", "export_rows", "json_rows", "read_rows"]
