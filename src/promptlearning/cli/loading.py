"""What the commands that use a saved adapter share: loading it, and reading input texts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError


def add_adapter_flags(parser: argparse.ArgumentParser, flag: str = "--adapter", **kwargs: Any) -> None:
    parser.add_argument(flag, dest="adapter", help="adapter directory (e.g. runs/mr/best)", **kwargs)
    parser.add_argument("--backbone", default=None, help="backbone to load it on (default: the one it records)")


def load_model(adapter: str, backbone_name: str | None = None, device: str | None = None) -> Any:
    """The saved adapter on its recorded backbone (or on ``backbone_name``)."""
    from promptlearning.backbones import load_backbone
    from promptlearning.model import PromptModel

    backbone = load_backbone(backbone_name) if backbone_name else None
    return PromptModel.from_pretrained(adapter, backbone=backbone, device=device)


def read_lines(path: str | None) -> list[str]:
    """The non-empty lines of ``--file PATH`` (none without a path)."""
    if not path:
        return []
    try:
        return [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    except FileNotFoundError as exc:
        raise ConfigError(f"--file {path} does not exist; give a text file with one input per line") from exc
