"""Subcommands of this subsystem, registered on the main CLI by :func:`add_commands`."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:
    """Register this subsystem's subcommands on the CLI's subparsers (none yet)."""
    _ = argparse
