"""What the commands that use a saved adapter share: loading it, and reading input texts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError


def add_adapter_flags(parser: argparse.ArgumentParser, flag: str = "--adapter", **kwargs: Any) -> None:
    parser.add_argument(flag, dest="adapter", help="adapter directory (e.g. runs/mr/best)", **kwargs)
    parser.add_argument("--backbone", default=None, help="backbone to load it on (default: the one it records)")
    add_dtype_flag(parser, None)


def add_dtype_flag(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--dtype``: what the frozen backbone's weights are held in (train, evaluate, predict)."""
    from promptlearning.backbone_catalog import DTYPE_NAMES

    told = "the dtype the adapter was trained with" if default is None else default
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default=argparse.SUPPRESS if default else None,
                        help=f"dtype of the frozen backbone weights (default: {told}); bfloat16 halves the memory "
                             "of big backbones (checked before loading); prompts and heads always train in float32")


def load_model(adapter: str, backbone_name: str | None = None, device: str | None = None,
               dtype: str | None = None, ensembles: bool = False) -> Any:
    """The saved adapter on its recorded backbone (or on ``backbone_name``), in ``dtype``
    (default: the dtype it was trained with, which its config records when not float32).
    An ensemble of prompts only where the command answers with predictions (``ensembles``),
    else refused with the way round."""
    from promptlearning.adapters import read_adapter_config
    from promptlearning.backbones import load_backbone
    from promptlearning.ensemble import load_predictor
    from promptlearning.errors import AdapterError
    from promptlearning.model import backbone_named_by

    config = read_adapter_config(Path(adapter))
    if not ensembles and "ensemble" in config:
        raise AdapterError(f"adapter {adapter} is an ensemble of prompts, which only evaluate, predict and serve take; "
                           "give one member's adapter instead (RUN/members/<i>/best)")
    dtype = dtype or str(config.get("backbone", {}).get("dtype", "float32"))
    backbone = load_backbone(backbone_name or backbone_named_by(config, Path(adapter)), dtype)
    return load_predictor(adapter, backbone=backbone, device=device)


def read_lines(path: str | None) -> list[str]:
    """The non-empty lines of ``--file PATH`` (none without a path)."""
    if not path:
        return []
    try:
        return [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    except FileNotFoundError as exc:
        raise ConfigError(f"--file {path} does not exist; give a text file with one input per line") from exc


def scores_test_file_alone(data: dict[str, Any], split: str, model_kind: str) -> bool:
    """Whether `evaluate` scores one --test-file alone (no --task or --train-file named), refusing what
    that cannot do: --split dev/train (drawn from training data) and a --max-test below 1."""
    if "test_file" not in data or {"task", "train_file"} & set(data):
        return False
    if split != "test":
        raise ConfigError(f"--split {split} is drawn from the training data; add --train-file (the file the "
                          f"{model_kind} was trained on) or --task NAME, or drop --split to score --test-file")
    if data.get("max_test") is not None and int(data["max_test"]) < 1:
        raise ConfigError(f"max_test must be >= 1 (got {data['max_test']}); omit --max-test to use the whole file")
    return True


def adopt_adapter_split(data: dict[str, Any], split: str, adapter: str) -> None:
    """For --split dev/train, redraw the adapter's own shots and data seed unless the user named them."""
    from promptlearning.adapters import read_adapter_config

    trained_on = read_adapter_config(Path(adapter)).get("extra") or {}
    for key in ("shots", "data_seed"):
        if split != "test" and key not in data and isinstance(trained_on.get(key), int):
            data[key] = trained_on[key]
