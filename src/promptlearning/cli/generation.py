"""Generation through `train`, `evaluate` and `predict`: what those commands do for an input -> target task.

No command of its own: ``train --task trivia_qa`` (or ``--head language_modeling`` with a
``--train-file`` of input and target columns) is a generation run, and ``evaluate`` and
``predict`` on an adapter whose head writes text score greedy answers and print them. Each
command hands over to the function here in one line, so its own module stays about labels.
(``generate`` needs nothing here: it continues texts in the adapter's template already.)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError

GENERATION_HEAD = "language_modeling"


def generation_run(cfg: Any) -> bool:
    """Whether an ExperimentConfig asks for generation: a text head, or a generation task. ``--demonstrations``
    outside such a run is refused here (nothing else reads it)."""
    from promptlearning.data.text_pairs import is_generation_task
    from promptlearning.heads.base import OutputKind

    tasks = list(cfg.tasks or []) + ([cfg.data.task] if cfg.data.task and not cfg.data.train_file else [])
    wanted = cfg.head.head_class().output is OutputKind.TEXT or any(is_generation_task(t) for t in tasks)
    if cfg.demonstrations and not wanted:
        raise ConfigError("--demonstrations writes training pairs before each input of a generation run; drop it, "
                          "or use --head language_modeling with a generation task (e.g. --task trivia_qa)")
    return wanted


def train_generation(args: argparse.Namespace) -> int:
    """`train` for a generation task: the language-modelling head unless --head names another (refused then),
    and a max length that fits an input and its target unless --max-length is given."""
    from promptlearning.cli.options import experiment_config, experiment_values
    from promptlearning.runs.generation import GENERATION_MAX_LENGTH, run_generation

    values = experiment_values(args, skip=("no_baseline",))
    values["head"].setdefault("kind", GENERATION_HEAD)
    values.setdefault("max_length", GENERATION_MAX_LENGTH)
    cfg = experiment_config(values)
    result = run_generation(cfg, resume=args.resume, baseline=not args.no_baseline)
    if cfg.output_dir:
        print(f"adapter (best on dev) saved to {result['adapter']}; metrics in {cfg.output_dir}/metrics.jsonl")
    return 0


def _answer_budget(adapter: str) -> int | None:
    """The new-token budget the adapter's run answered with (None: an adapter that records none)."""
    from promptlearning.adapters import read_adapter_config

    budget = (read_adapter_config(Path(adapter)).get("extra") or {}).get("max_new_tokens")
    return budget if isinstance(budget, int) and budget > 0 else None


def evaluate_generation(model: Any, args: argparse.Namespace) -> int:
    """`evaluate` of a generator: exact match, token F1, ROUGE-L and BLEU of its greedy answers on its task,
    another generation task, the user's files, or one --test-file alone; one JSON line. As for sentence
    adapters, --split dev/train redraw the adapter's own shots and data seed unless told otherwise."""
    from promptlearning.cli.loading import adopt_adapter_split, scores_test_file_alone
    from promptlearning.cli.options import experiment_config, experiment_values
    from promptlearning.data.text_pairs import generation_task_names, is_generation_task
    from promptlearning.runs.generation import evaluate_generator, evaluate_generator_on_file

    budget = _answer_budget(args.adapter)
    values = experiment_values(args, skip=("adapter", "backbone", "split", "dtype"))
    data = values["data"]
    if scores_test_file_alone(data, args.split, "generator"):
        print(json.dumps(evaluate_generator_on_file(model, str(data["test_file"]),
                                                    text_column=str(data.get("text_column", "text")),
                                                    label_column=str(data.get("label_column", "label")),
                                                    max_test=data.get("max_test"), max_new_tokens=budget)))
        return 0
    adopt_adapter_split(data, args.split, args.adapter)
    if not {"task", "train_file"} & set(data):  # no data named: the adapter's own task
        if not is_generation_task(model.task):
            raise ConfigError(f"the generator was trained on your own data (task {model.task!r}); pass --test-file "
                              f"FILE (input and target columns) to evaluate it, or --task {' or '.join(generation_task_names())}")
        data["task"] = model.task
    cfg = experiment_config(values)
    print(json.dumps(evaluate_generator(model, cfg.data, args.split, budget)))
    return 0


def predict_generation(model: Any, records: Sequence[Any], adapter: str, fmt: str = "tsv",
                       output: str | None = None) -> int:
    """`predict` with a generator: each input's greedy answer (its first line), as a table with the answer
    and the input's columns (TSV or CSV) or one JSON object per input; to stdout or, atomically, ``output``."""
    from promptlearning.data.truncation import TruncationCount
    from promptlearning.runs.generation import DEFAULT_ANSWER_TOKENS, answer_texts

    if any(getattr(r, "text_b", None) is not None for r in records):
        raise ConfigError("a generator answers one text per input; drop --text-b-column")
    cut = TruncationCount()
    answers = answer_texts(model, [r.text for r in records], _answer_budget(adapter) or DEFAULT_ANSWER_TOKENS, cut)
    if cut.cut:
        print(f"note: {cut.cut} of {cut.inputs} inputs were longer than the adapter's max length allows and were cut, "
              f"keeping the {model.truncation}", file=sys.stderr)
    rows = [({"answer": a}, {(f"input_{k}" if k == "answer" else str(k)): v for k, v in r.fields.items()})
            for r, a in zip(records, answers, strict=True)]
    buffer = io.StringIO()
    if fmt == "jsonl":
        for answer, carried in rows:
            buffer.write(json.dumps({**carried, **answer}, ensure_ascii=False) + "\n")
    else:
        columns = list(dict.fromkeys(k for _, carried in rows for k in carried))
        writer = csv.writer(buffer, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        writer.writerow(["answer", *columns])
        for answer, carried in rows:
            writer.writerow([answer["answer"], *(carried.get(c, "") for c in columns)])
    if output:
        from promptlearning.fileio import write_text_atomic

        write_text_atomic(Path(output), buffer.getvalue())
        print(f"{len(rows)} answers written to {output}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0
