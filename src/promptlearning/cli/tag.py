"""Token labelling through `train`, `evaluate` and `predict`: what those commands do for a tagger.

No command of its own: ``train --task pos_wsj`` (or ``--head token_classification`` with a
``--train-file`` of CoNLL columns or ``word/TAG`` lines) is a tagging run, and ``evaluate`` and
``predict`` on an adapter whose head labels tokens score words and print ``word/TAG``. Each
command hands over to the function here in one line, so its own module stays about sentences.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from promptlearning.errors import ConfigError

TAGGING_HEAD = "token_classification"


def tagging_run(cfg: Any) -> bool:
    """Whether an ExperimentConfig asks for token labelling: a token-labelling head, or a tagging task."""
    from promptlearning.data.tagging import is_tagged_task
    from promptlearning.heads.base import OutputKind

    if cfg.head.head_class().output is OutputKind.TOKEN_LABELS:
        return True
    tasks = list(cfg.tasks or []) + ([cfg.data.task] if cfg.data.task and not cfg.data.train_file else [])
    return any(is_tagged_task(t) for t in tasks)


def train_tagging(args: argparse.Namespace) -> int:
    """`train` for a tagging task: the token-classification head unless --head names another (refused then),
    and a max length that fits whole sentences unless --max-length is given."""
    from promptlearning.cli.options import experiment_config, experiment_values
    from promptlearning.runs.tagging import TAGGING_MAX_LENGTH, run_tagging

    values = experiment_values(args, skip=("no_baseline",))
    values["head"].setdefault("kind", TAGGING_HEAD)
    values.setdefault("max_length", TAGGING_MAX_LENGTH)
    cfg = experiment_config(values)
    result = run_tagging(cfg, resume=args.resume, baseline=not args.no_baseline)
    if cfg.output_dir:
        print(f"adapter (best on dev) saved to {result['adapter']}; metrics in {cfg.output_dir}/metrics.jsonl")
    return 0


def evaluate_tagging(model: Any, args: argparse.Namespace) -> int:
    """`evaluate` of a tagger: word scores (entity spans for BIO tags) on its task, another tagging task
    (cross-domain: --task pos_oanc), the user's files, or one --test-file alone; one JSON line. As for
    sentence adapters, --split dev/train redraw the adapter's own shots and data seed unless told otherwise."""

    from promptlearning.cli.loading import adopt_adapter_split, scores_test_file_alone
    from promptlearning.cli.options import experiment_config, experiment_values
    from promptlearning.data.tagging import is_tagged_task, tagged_task_names
    from promptlearning.runs.tagging import evaluate_tagger, evaluate_tagger_on_file

    values = experiment_values(args, skip=("adapter", "backbone", "split", "dtype"))
    data = values["data"]
    if scores_test_file_alone(data, args.split, "tagger"):
        print(json.dumps(evaluate_tagger_on_file(model, str(data["test_file"]),
                                                 label_column=str(data.get("label_column", "label")),
                                                 text_column=str(data.get("text_column", "text")),
                                                 max_test=data.get("max_test"))))
        return 0
    adopt_adapter_split(data, args.split, args.adapter)
    if not {"task", "train_file"} & set(data):  # no data named: the adapter's own task
        if not is_tagged_task(model.task):
            raise ConfigError(f"the tagger was trained on your own data (task {model.task!r}); pass --test-file FILE "
                              f"(tagged sentences) to evaluate it, or --task {' or '.join(tagged_task_names())}")
        data["task"] = model.task
    cfg = experiment_config(values)
    print(json.dumps(evaluate_tagger(model, cfg.data, args.split)))
    return 0


def predict_tagging(model: Any, records: Sequence[Any], fmt: str = "tsv", output: str | None = None) -> int:
    """`predict` with a tagger: each input's whitespace-separated words as one ``word/TAG ...`` line
    (``word/?`` past the adapter's max length, with a note on stderr), or with ``jsonl`` one object
    per input (its columns, ``words`` and ``tags``); to stdout or, written atomically, to ``output``."""
    from promptlearning.training.token_metrics import tag_texts

    if any(getattr(r, "text_b", None) is not None for r in records):
        raise ConfigError("a tagger reads one text per input; drop --text-b-column")
    texts = [r.text for r in records]
    lines, cut = [], 0
    for record, pairs in zip(records, tag_texts(model, texts), strict=True):
        cut += sum(tag is None for _, tag in pairs)
        if fmt == "jsonl":
            lines.append(json.dumps({**record.fields, "words": [w for w, _ in pairs], "tags": [t for _, t in pairs]},
                                    ensure_ascii=False))
        else:
            lines.append(" ".join(f"{w}/{t if t is not None else '?'}" for w, t in pairs))
    if cut:
        print(f"note: {cut} word(s) lay past the adapter's max length ({model.max_length} tokens) and were not "
              "tagged (shown as word/?); split long texts into sentences", file=sys.stderr)
    text = "".join(line + "\n" for line in lines)
    if output:
        from pathlib import Path

        from promptlearning.fileio import write_text_atomic

        write_text_atomic(Path(output), text)
        print(f"{len(lines)} tagged inputs written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
