"""The `promptlearning` command line: one command table over the library's drivers."""

from __future__ import annotations

from promptlearning.cli.main import main

__all__ = ["main"]
