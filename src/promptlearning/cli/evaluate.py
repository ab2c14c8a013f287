"""`promptlearning evaluate`: score a saved adapter on a task's test (or dev, or train) split."""

from __future__ import annotations

import argparse
import json
from typing import Any

from promptlearning.cli.loading import add_adapter_flags, load_model
from promptlearning.cli.options import add_config_flag, add_data_flags, experiment_config, experiment_values
from promptlearning.errors import ConfigError


def cmd_evaluate(args: argparse.Namespace) -> int:
    from promptlearning.runs.single_task import load_data, make_split, test_subset
    from promptlearning.training.metrics import evaluate

    model = load_model(args.adapter, args.backbone)
    values = experiment_values(args, skip=("adapter", "backbone", "split"))
    if not {"task", "train_file"} & set(values["data"]):  # no data named: the adapter's own task
        from promptlearning.data import list_tasks

        if model.task not in {spec.name for spec in list_tasks()}:
            raise ConfigError(f"the adapter was trained on your own data (task {model.task!r}); "
                              "pass --train-file (and --test-file) to evaluate it, or --task NAME")
        values["data"]["task"] = model.task
    cfg = experiment_config(values)
    data = load_data(cfg.data)
    if data.labels != model.labels:
        raise ConfigError(f"the adapter predicts {model.labels} but task {data.name} has labels {data.labels}; "
                          "evaluate on a task with the same labels")
    examples = data.test if args.split == "test" else getattr(make_split(cfg.data, data), args.split)
    if cfg.data.max_test is not None and args.split == "test":
        examples = test_subset(examples, cfg.data.max_test)
    scores = evaluate(model, model.encode(examples))
    print(json.dumps({"task": data.name, "split": args.split, **scores}))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="score a saved adapter on a task's test (or dev) split")
    add_adapter_flags(p, required=True)
    add_config_flag(p)
    p.add_argument("--split", choices=("test", "dev", "train"), default="test")
    add_data_flags(p)
    p.set_defaults(func=cmd_evaluate)
    return p
