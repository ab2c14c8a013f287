"""A task from the user's own files: CSV, TSV or JSON lines, chosen by file extension.

User data is taken as given (texts are only stripped; duplicates are kept: they are the
user's call), but anything that would silently corrupt a run is refused with a one-line
:class:`DataError` naming the file, the line and the fix: a missing file, no rows, a
malformed row, a missing column, an empty text, or labels that do not line up.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlearning.data.examples import Example, TaskData, count_overlap, infer_labels, split_fixed_test
from promptlearning.errors import DataError

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
#: what spreadsheet and pandas exports write for an empty cell; as a label it would become a class of its own
_MISSING_LABELS = frozenset({"nan", "null", "#n/a"})
_FLAGS = {"text_column": "--text-column", "label_column": "--label-column", "text_b_column": "--text-b-column"}


@dataclass(frozen=True)
class _Row:
    """One record as read: its line in the file and its raw fields."""

    line: int
    text_a: str
    text_b: str | None
    label: str


@dataclass(frozen=True)
class _Columns:
    text: str
    label: str
    text_b: str | None

    def named(self) -> list[tuple[str, str]]:
        """(argument name, column) pairs the rows must have."""
        pairs = [("text_column", self.text), ("label_column", self.label)]
        return pairs + ([("text_b_column", self.text_b)] if self.text_b is not None else [])


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check the path")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path} line {line} is not UTF-8 text; re-save the file as UTF-8") from None


def _missing_column(path: Path, arg: str, column: str, available: Sequence[str], line: int | None = None) -> DataError:
    where = f"{path} line {line}" if line is not None else str(path)
    shown = ", ".join(repr(c) for c in available) or "none"
    return DataError(
        f"{where} has no column {column!r} (available: {shown}); set {_FLAGS[arg]} ({arg}=) to the right column"
    )


def _cell(path: Path, line: int, value: Any, arg: str, column: str) -> str:
    """A text or label field as a stripped, non-empty string; integers are fine for labels."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not isinstance(value, str) and not (is_int and arg == "label_column"):
        kind = "a string or an integer" if arg == "label_column" else "a string"
        raise DataError(f"{path} line {line}: column {column!r} holds {value!r}; make it {kind}")
    text = str(value).strip()
    if not text:
        raise DataError(f"{path} line {line}: column {column!r} is empty; fill it in or remove the row")
    if arg == "label_column" and text.lower() in _MISSING_LABELS:
        raise DataError(f"{path} line {line}: label {text!r} marks a missing value, not a class; "
                        "fill it in or remove the row")
    return text


def _rows_delimited(path: Path, text: str, delimiter: str, cols: _Columns) -> list[_Row]:
    # strict: a quote left open to the end of the file is an error, not one giant last field
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty; it needs a header row and at least one example")
        header = [h.strip() for h in header]
        for arg, column in cols.named():
            if column not in header:
                raise _missing_column(path, arg, column, header)
            if header.count(column) > 1:
                raise DataError(f"{path}: column {column!r} appears {header.count(column)} times in the header; "
                                "rename the copies so each column has its own name")
        where = {column: header.index(column) for _, column in cols.named()}
        rows: list[_Row] = []
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # blank line
            if len(fields) != len(header):
                raise DataError(
                    f"{path} line {line} has {len(fields)} fields but the header has {len(header)}; "
                    "quote fields that contain the delimiter or a line break"
                )
            rows.append(_make_row(path, line, {c: fields[i] for c, i in where.items()}, cols))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num} is malformed ({exc}); check its quotes") from None
    _refuse_swallowed_rows(path, rows, delimiter)
    return rows


def _refuse_swallowed_rows(path: Path, rows: Sequence[_Row], delimiter: str) -> None:
    """A quote opened in one row and closed in a later one merges the rows in between into one text.

    Such a text holds a line break followed by what looks like the end of a row (the delimiter
    and one of the file's labels); multi-line texts of the user's own rarely end a line that way."""
    labels = {r.label for r in rows}
    for r in rows:
        for text in (r.text_a, r.text_b or ""):
            for piece in text.splitlines()[:-1]:
                head, sep, tail = piece.rpartition(delimiter)
                if sep and head.strip() and tail.strip() in labels:
                    raise DataError(f"{path} line {r.line}: a quoted text runs over several lines and holds what "
                                    f"looks like another row ({piece.strip()[:40]!r}); check for an unclosed quote")


def _json_objects(path: Path, text: str) -> list[tuple[int, Any]]:
    """(line, value) for JSON lines, or for a top-level JSON array (line of the array's start)."""
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno} is not valid JSON ({exc.msg}); fix the file") from None
        start = text[: len(text) - len(stripped)].count("\n") + 1
        return [(start, v) for v in values]
    out: list[tuple[int, Any]] = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            out.append((line, json.loads(raw)))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path} line {line} is not valid JSON ({exc.msg}); write one JSON object per line"
            ) from None
    return out


def _rows_json(path: Path, text: str, cols: _Columns) -> list[_Row]:
    rows: list[_Row] = []
    for line, obj in _json_objects(path, text):
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {line} holds a {type(obj).__name__}, not an object; write one JSON object per line")
        for arg, column in cols.named():
            if column not in obj:
                raise _missing_column(path, arg, column, list(obj), line)
        rows.append(_make_row(path, line, obj, cols))
    return rows


def _make_row(path: Path, line: int, fields: dict[str, Any], cols: _Columns) -> _Row:
    text_b = _cell(path, line, fields[cols.text_b], "text_b_column", cols.text_b) if cols.text_b else None
    return _Row(
        line=line,
        text_a=_cell(path, line, fields[cols.text], "text_column", cols.text),
        text_b=text_b,
        label=_cell(path, line, fields[cols.label], "label_column", cols.label),
    )


def _read_rows(path: str | Path, cols: _Columns) -> list[_Row]:
    """Rows of one file, format chosen by extension; refuses an empty file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _DELIMITERS and suffix not in _JSON_SUFFIXES:
        raise DataError(f"cannot tell the format of {path}; name it .csv, .tsv or .jsonl")
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty; it needs at least one example")
    if suffix in _DELIMITERS:
        rows = _rows_delimited(path, text, _DELIMITERS[suffix], cols)
    else:
        rows = _rows_json(path, text, cols)
    if not rows:
        raise DataError(f"{path} has no examples, only a header; add rows")
    return rows


def _infer_labels(rows: Sequence[_Row]) -> list[str]:
    return infer_labels(r.label for r in rows)


def _label_index(rows: Sequence[_Row], labels: Sequence[str], path: Path, given: bool) -> list[int]:
    """Each row's label index: by name, or, if every value is an integer index into given
    label names (a 0/1 file with ``labels=["negative", "positive"]``), by position."""
    index = {name: i for i, name in enumerate(labels)}
    if given and any(r.label not in index for r in rows):
        try:
            ids = [int(r.label) for r in rows]
        except ValueError:
            ids = []
        if ids and all(0 <= i < len(labels) for i in ids):
            return ids
    out = []
    for r in rows:
        if r.label not in index:
            if given:
                raise DataError(
                    f"{path} line {r.line} has label {r.label!r}, which is not among the given labels "
                    f"({', '.join(labels)}); add it to the labels list or fix the row"
                )
            raise DataError(
                f"{path} line {r.line} has label {r.label!r}, which never occurs in the training file; "
                "add training examples of it to the training file"
            )
        out.append(index[r.label])
    return out


def load_user_task(
    train_path: str | Path,
    test_path: str | Path | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    text_b_column: str | None = None,
    name: str | None = None,
    description: str | None = None,
    labels: Sequence[str] | None = None,
    allow_overlap: bool = False,
) -> TaskData:
    """A task from a training file (its pool) and an optional test file.

    Without ``labels``, the label names are the distinct values of the training file's
    label column, sorted (numerically if all are integers). With ``labels``, every value
    must be one of them, or every value an integer index into them. Without a test file,
    a fixed test part (min(1000, 20 %)) is split off the training file by the same seeded
    rule the built-in tasks use."""
    for given_path in (train_path, test_path):
        if given_path is not None and not isinstance(given_path, (str, Path)):
            raise DataError(f"load_user_task reads files; for a {type(given_path).__name__} use "
                            "TaskData.from_pandas(df, text=..., label=...), from_dataset or from_records")
    cols = _Columns(text_column, label_column, text_b_column)
    train_rows = _read_rows(train_path, cols)
    test_rows = _read_rows(test_path, cols) if test_path is not None else None
    given = labels is not None
    if labels is not None:
        names = [str(x).strip() for x in labels]
        if len(set(names)) != len(names) or not all(names):
            raise DataError(f"the given labels {names} have duplicates or blanks; pass distinct label names")
    else:
        names = _infer_labels(train_rows)
    if len(names) < 2:
        if given:
            raise DataError(f"only {len(names)} label name given ({names}); pass at least 2 labels")
        raise DataError(f"{train_path} has only one class ({names[0]!r}); a classification task needs at least 2 labels")
    train = _examples(train_rows, names, Path(train_path), given)
    if test_rows is None:
        pool, test = split_fixed_test(train)
    else:
        pool, test = train, _examples(test_rows, names, Path(str(test_path)), given)
        shared = count_overlap(pool, test)
        if shared and not allow_overlap:
            raise DataError(f"{shared} of {len(test)} examples in {test_path} also appear in {train_path} (same text "
                            "after normalising case and spaces), so the test score would be inflated; remove them "
                            "from one file, or pass --allow-overlap (allow_overlap=True) to score anyway")
    task_name = name or Path(train_path).stem
    text = description or f"Decide which of these labels fits the text: {', '.join(names)}."
    return TaskData(name=task_name, labels=names, description=text, pool=pool, test=test)


def _examples(rows: Sequence[_Row], labels: Sequence[str], path: Path, given: bool) -> list[Example]:
    ids = _label_index(rows, labels, path, given)
    return [Example(text_a=r.text_a, label=i, text_b=r.text_b) for r, i in zip(rows, ids, strict=True)]


def load_labelled_file(path: str | Path, labels: Sequence[str], *, text_column: str = "text",
                       label_column: str = "label", text_b_column: str | None = None) -> list[Example]:
    """The examples of one labelled file under known label names (a saved adapter's): for evaluating
    an adapter on a file with no training file at hand. Values must be the names, or indices into them."""
    cols = _Columns(text_column, label_column, text_b_column)
    return _examples(_read_rows(path, cols), list(labels), Path(path), given=True)


@dataclass(frozen=True)
class InputRecord:
    """One input to classify: its text (and second text), and every field of its row, carried to the output."""

    text: str
    text_b: str | None
    fields: dict[str, Any]


def read_inputs(path: str | Path, *, text_column: str = "text", text_b_column: str | None = None) -> list[InputRecord]:
    """Texts to classify from a CSV, TSV or JSONL file (by extension), each row one input (a quoted
    cell may span lines); any other file holds one input per non-blank line (column ``text``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _DELIMITERS and suffix not in _JSON_SUFFIXES:
        lines = _read_text(path).splitlines()
        return [InputRecord(line.strip(), None, {"text": line.strip()}) for line in lines if line.strip()]
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty; it needs at least one input")
    wanted = [("text_column", text_column)] + ([("text_b_column", text_b_column)] if text_b_column else [])
    out = []
    for line, fields in _records(path, text, suffix):
        for arg, column in wanted:
            if column not in fields:
                raise _missing_column(path, arg, column, list(fields), line)
        b = _cell(path, line, fields[text_b_column], "text_b_column", text_b_column) if text_b_column else None
        out.append(InputRecord(_cell(path, line, fields[text_column], "text_column", text_column), b, fields))
    if not out:
        raise DataError(f"{path} has no inputs, only a header; add rows")
    return out


def _records(path: Path, text: str, suffix: str) -> list[tuple[int, dict[str, Any]]]:
    """(line, column -> value) for every row of a delimited or JSON file."""
    if suffix in _JSON_SUFFIXES:
        out = []
        for line, obj in _json_objects(path, text):
            if not isinstance(obj, dict):
                raise DataError(f"{path} line {line} holds a {type(obj).__name__}, not an object; "
                                "write one JSON object per line")
            out.append((line, obj))
        return out
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[suffix], strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise DataError(f"{path}: column {repeated[0]!r} appears more than once in the header; rename the copies")
        rows = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise DataError(f"{path} line {reader.line_num} has {len(fields)} fields but the header has "
                                f"{len(header)}; quote fields that contain the delimiter or a line break")
            rows.append((reader.line_num, dict(zip(header, fields, strict=True))))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num} is malformed ({exc}); check its quotes") from None
    return rows


def read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, column -> value) of every row of a CSV, TSV or JSONL file (by extension), for readers of
    other row shapes than text and label (generation's input and target); refuses what :func:`_read_rows`
    refuses: an unknown extension, a missing or empty file, a malformed row, no rows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _DELIMITERS and suffix not in _JSON_SUFFIXES:
        raise DataError(f"cannot tell the format of {path}; name it .csv, .tsv or .jsonl")
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path} is empty; it needs at least one example")
    rows = _records(path, text, suffix)
    if not rows:
        raise DataError(f"{path} has no examples, only a header; add rows")
    return rows
