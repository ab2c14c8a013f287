"""`promptlearning evaluate`: score a saved adapter on a task's test (or dev, or train) split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from promptlearning.cli.loading import add_adapter_flags, load_model
from promptlearning.cli.options import add_config_flag, add_data_flags, experiment_config, experiment_values
from promptlearning.errors import ConfigError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from promptlearning.adapters import read_adapter_config
    from promptlearning.runs.single_task import load_data, make_split, test_subset
    from promptlearning.training.metrics import evaluate

    model = load_model(args.adapter, args.backbone, dtype=args.dtype, ensembles=True)
    if model.head.output == "token_labels":  # a tagger: scored word by word (cli.tag)
        from promptlearning.cli.tag import evaluate_tagging

        return evaluate_tagging(model, args)
    if model.head.output == "text":  # a generator: greedy answers scored as texts (cli.generation)
        from promptlearning.cli.generation import evaluate_generation

        return evaluate_generation(model, args)
    values = experiment_values(args, skip=("adapter", "backbone", "split", "dtype"))
    if values.get("tasks"):
        raise ConfigError("evaluate scores one task at a time: give --task NAME (once per task) instead of --tasks")
    data_values = values["data"]
    served = [t.name for t in model.tasks]
    if len(served) > 1 and data_values.get("task") not in served:  # a multi-task adapter answers for one task
        told = f"--task {data_values['task']} is not one of them" if data_values.get("task") else "pass --task NAME"
        raise ConfigError(f"this adapter serves {len(served)} tasks ({', '.join(served)}): {told}")
    task_id = served.index(data_values["task"]) if len(served) > 1 else 0
    labels = model.tasks[task_id].labels
    if "test_file" in data_values and not {"task", "train_file"} & set(data_values):
        return _evaluate_file(model, args.split, data_values)
    trained_on = read_adapter_config(Path(args.adapter)).get("extra") or {}
    for key in ("shots", "data_seed"):  # the dev and train splits are the adapter's own unless told otherwise
        if args.split != "test" and key not in data_values and isinstance(trained_on.get(key), int):
            data_values[key] = trained_on[key]
    if not {"task", "train_file"} & set(values["data"]):  # no data named: the adapter's own task
        from promptlearning.data import list_tasks

        if model.task not in {spec.name for spec in list_tasks(None)}:
            raise ConfigError(f"the adapter was trained on your own data (task {model.task!r}); "
                              "pass --test-file FILE (labelled rows; for an image adapter, a folder with one sub-folder of "
                              "images per label) to evaluate it, or --task NAME")
        values["data"]["task"] = model.task
    cfg = experiment_config(values)
    data = load_data(cfg.data)
    if data.labels != labels:
        raise ConfigError(f"the adapter predicts {labels} but task {data.name} has labels {data.labels}; "
                          "evaluate on a task with the same labels")
    examples = data.test if args.split == "test" else getattr(make_split(cfg.data, data), args.split)
    if cfg.data.max_test is not None and args.split == "test":
        examples = test_subset(examples, cfg.data.max_test)
    scores = evaluate(model, model.encode(examples, task_id), progress=True)
    print(json.dumps({"task": data.name, "split": args.split, **scores, **_memory(model)}))
    return 0


def _evaluate_file(model: Any, split: str, data: dict[str, Any]) -> int:
    """Score the adapter on a labelled file alone: the label names are the adapter's, the columns
    default to text and label."""
    from promptlearning.data.user_files import load_labelled_file
    from promptlearning.training.metrics import evaluate

    if split != "test":
        raise ConfigError(f"--split {split} is drawn from the training data; add --train-file (the file the "
                          "adapter was trained on) or --task NAME, or drop --split to score --test-file")
    from promptlearning.methods.base import input_kind

    if Path(str(data["test_file"])).is_dir():  # an image adapter's test images, one sub-folder per label
        from promptlearning.data.images import labelled_image_folder

        if input_kind(model.backbone.info) != "image":  # a text adapter read a folder as zero images, scoring 0 of 0
            raise ConfigError(f"--test-file {data['test_file']} is a folder; a text adapter is scored on a CSV, TSV "
                              "or JSONL file with text and label columns")

        examples = labelled_image_folder(data["test_file"], model.labels)
    else:
        examples = load_labelled_file(data["test_file"], model.labels, text_column=data.get("text_column", "text"),
                                      label_column=data.get("label_column", "label"),
                                      text_b_column=data.get("text_b_column"))
    if data.get("max_test") is not None:
        if int(data["max_test"]) < 1:
            raise ConfigError(f"max_test must be >= 1 (got {data['max_test']}); omit --max-test to use the whole file")
        from promptlearning.data.loading import test_subset

        examples = test_subset(examples, int(data["max_test"]))
    if not examples:
        raise ConfigError(f"--test-file {data['test_file']} holds no labelled examples to score; give a file with rows")
    scores = evaluate(model, model.encode(examples), progress=True)
    print(json.dumps({"task": Path(str(data["test_file"])).stem, "split": "test", **scores, **_memory(model)}))
    return 0


def _memory(model: Any) -> dict[str, Any]:
    """The peak memory of the evaluation and the dtype the backbone was held in (sizing machines)."""
    from promptlearning.adapters import backbone_dtype
    from promptlearning.memory import peak_memory

    return {"dtype": backbone_dtype(model.backbone), **peak_memory()}


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="score a saved adapter on a task's test (or dev) split, or on your --test-file alone")
    add_adapter_flags(p, required=True)
    add_config_flag(p)
    p.add_argument("--split", choices=("test", "dev", "train"), default="test")
    add_data_flags(p)
    p.set_defaults(func=cmd_evaluate)
    return p
