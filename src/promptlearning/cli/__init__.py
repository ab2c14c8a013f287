"""The `promptlearning` command line: one command table (:mod:`.commands`) over the library's drivers,
one options builder (:mod:`.options`) for every command."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the command line (imported on call, so ``python -m promptlearning.cli.main`` runs cleanly)."""
    from promptlearning.cli.main import main as run

    return run(argv)


__all__ = ["main"]
