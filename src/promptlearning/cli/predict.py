"""`promptlearning predict`: classify texts (arguments, a file or stdin) with a saved adapter.

Input: texts as arguments; ``--file`` a CSV, TSV or JSONL file (one input per row, from
``--text-column``; a quoted cell may span lines) or any other text file (one input per line);
else stdin, one input per line. Output: a table with a header, as TSV (default: the predicted
label, its probability and the input), CSV or JSONL (``--output-format``, or the extension of
``--output``), which carry every input column through and every label's probability.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from promptlearning.cli.loading import add_adapter_flags, load_model
from promptlearning.errors import ConfigError, DataError

FORMATS = ("tsv", "csv", "jsonl")
_BY_SUFFIX = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
PREDICTED = ("label", "probability", "probabilities")  # output keys; input columns of these names get "input_"


def _inputs(args: argparse.Namespace) -> list[Any]:
    from promptlearning.data.user_files import InputRecord, read_inputs

    records = [InputRecord(t, None, {"text": t}) for t in args.texts]
    for text in args.texts:  # `predict --adapter A reviews.csv` classifies the words "reviews.csv": say so
        if Path(text).suffix.lower() in (*_BY_SUFFIX, ".txt") and Path(text).is_file():  # an image's path is its input
            print(f"note: {text!r} was classified as a text; it is also a file, whose lines --file {text} "
                  "classifies", file=sys.stderr)
    if args.file:
        if Path(args.file).is_dir():
            raise ConfigError(f"--file {args.file} is a folder; give a CSV, TSV, JSONL or text file")
        if not Path(args.file).is_file():
            raise ConfigError(f"--file {args.file} does not exist; give a CSV, TSV, JSONL or text file "
                              "(one input per line)")
        records += read_inputs(args.file, text_column=args.text_column or "text", text_b_column=args.text_b_column)
    elif args.text_column or args.text_b_column:
        raise ConfigError("--text-column and --text-b-column name columns of --file; give --file FILE.csv")
    if not records and not args.texts and not sys.stdin.isatty():
        records = [InputRecord(ln.strip(), None, {"text": ln.strip()}) for ln in sys.stdin.read().splitlines()
                   if ln.strip()]
    if not records:
        raise ConfigError("nothing to classify; give texts as arguments, --file FILE, or lines on stdin")
    for i, record in enumerate(records, 1):
        if not record.text.strip():
            raise DataError(f"input {i} is an empty text; remove it or fill it in")
    return records


def output_format(args: argparse.Namespace) -> str:
    if args.output_format:
        return str(args.output_format)
    if args.json:
        return "jsonl"
    if args.output:
        suffix = Path(args.output).suffix.lower()
        if suffix not in _BY_SUFFIX:
            raise ConfigError(f"cannot tell the format of --output {args.output}; name it .csv, .tsv or .jsonl "
                              "or pass --output-format csv|tsv|jsonl")
        return _BY_SUFFIX[suffix]
    return "tsv"


def render(records: list[Any], labels: list[str], probs: list[list[float]], fmt: str) -> str:
    """The predictions as one table: the predicted label and its probability, the input's columns
    (renamed ``input_<name>`` where they clash with an output key) and, but for TSV, every label's probability."""
    rows = []
    for record, row in zip(records, probs, strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        carried = {(f"input_{k}" if k in PREDICTED else str(k)): v for k, v in record.fields.items()}
        rows.append(({"label": labels[best], "probability": round(row[best], 6)}, carried,
                     dict(zip(labels, (round(p, 6) for p in row), strict=True))))  # one precision for both
    out = io.StringIO()
    if fmt == "jsonl":
        for predicted, carried, each in rows:
            out.write(json.dumps({**carried, **predicted, "probabilities": each}, ensure_ascii=False) + "\n")
        return out.getvalue()
    columns = list(dict.fromkeys(k for _, carried, _ in rows for k in carried))
    header = ["label", "probability", *columns] + ([] if fmt == "tsv" else [f"p_{label}" for label in labels])
    writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
    writer.writerow(header)
    for predicted, carried, each in rows:
        values = [predicted["label"], f"{predicted['probability']:.3f}"] + [carried.get(c, "") for c in columns]
        writer.writerow(values + ([] if fmt == "tsv" else [f"{each[label]:.6f}" for label in labels]))
    return out.getvalue()


def _served_task(model: Any, task: str | None) -> tuple[str | None, list[str]]:
    """The task to answer for: ``task`` if the adapter serves it; with an adapter that serves several, one must
    be named (it used to answer as the first task, silently, whatever the texts were)."""
    served = [t.name for t in getattr(model, "tasks", [])]
    if task is not None and task not in served:
        raise ConfigError(f"this adapter does not serve task {task!r}; it serves {', '.join(served)}")
    if task is None and len(served) > 1:
        raise ConfigError(f"this adapter serves {len(served)} tasks ({', '.join(served)}): pass --task NAME")
    return task, list(model.tasks[served.index(task)].labels if task is not None else model.labels)


def cmd_predict(args: argparse.Namespace) -> int:
    fmt = output_format(args)
    from promptlearning.cli.output_file import check_output_file

    check_output_file(args.output, input_file=args.file, adapter=args.adapter, overwrite=args.overwrite)
    records = _inputs(args)
    model = load_model(args.adapter, args.backbone, dtype=args.dtype, ensembles=True)
    if model.head.output == "token_labels":  # a tagger: word/TAG per word (cli.tag)
        from promptlearning.cli.tag import predict_tagging

        return predict_tagging(model, records, fmt, args.output)
    if model.head.output == "text":  # a generator: its answer per input (cli.generation)
        from promptlearning.cli.generation import predict_generation

        return predict_generation(model, records, args.adapter, fmt, args.output)
    task, labels = _served_task(model, args.task)
    texts = [(r.text, r.text_b) if r.text_b is not None else r.text for r in records]
    from promptlearning.data.truncation import TruncationCount

    cut = TruncationCount()
    probs = model.predict_proba(texts, task=task, count=cut).tolist()
    if cut.cut:
        print(f"note: {cut.cut} of {cut.inputs} inputs ({cut.dropped:,} tokens dropped) were longer than the adapter's max_length {model.max_length} and cut, "
              f"keeping the {model.truncation}", file=sys.stderr)
    table = render(records, labels, probs, fmt)
    if args.output:
        from promptlearning.fileio import write_text_atomic

        write_text_atomic(Path(args.output), table)
        print(f"{len(records)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(table)
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="classify texts with a saved adapter", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_adapter_flags(p, required=True)
    p.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
    p.add_argument("--file", help="CSV, TSV or JSONL file (one input per row) or text file (one per line)")
    p.add_argument("--task", help="which task to answer for, with an adapter that serves several (multitask_prompt, "
                                  "adapt, hyperprompt...); the labels are that task's")
    p.add_argument("--text-column", help="column of --file with the text (default: text)")
    p.add_argument("--text-b-column", help="column of --file with the second text of sentence pairs")
    p.add_argument("--output", metavar="FILE", help="write the predictions here (format from the extension)")
    p.add_argument("--overwrite", action="store_true", help="replace an --output file that exists (refused without it)")
    p.add_argument("--output-format", choices=FORMATS,
                   help="tsv (default: label, probability, input), csv or jsonl (with every label's probability)")
    p.add_argument("--json", action="store_true", help="same as --output-format jsonl")
    p.set_defaults(func=cmd_predict)
    return p
