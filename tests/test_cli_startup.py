"""Start-up cost: the listings, --help and --version import neither torch nor transformers.

Checked by the modules loaded after the call in a fresh interpreter (never by wall time, which
depends on the machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from promptlearning.cli.commands import COMMANDS
from promptlearning.cli.method_catalog import listed_methods, read_from_registry, read_from_source

HEAVY = ("torch", "transformers")

_PROBE = """
import io, json, sys, contextlib
from promptlearning.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as exc:
        rc = exc.code
print(json.dumps({"rc": rc, "out": out.getvalue(), "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _run(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["methods"], ["backbones"], ["tasks", "--no-sizes"],
                                  ["evaluate", "--help"], ["predict", "--help"]])
def test_quick_commands_import_no_torch(argv: list[str]) -> None:
    result = _run(*argv)
    assert result["rc"] in (0, None), result
    assert result["out"], f"{argv} printed nothing"
    assert result["heavy"] == [], f"`promptlearning {' '.join(argv)}` imported {result['heavy']}"


def test_help_lists_every_command_from_the_table() -> None:
    out = str(_run("--help")["out"])
    for command in COMMANDS:
        assert command.name in out
        if command.summary:
            assert command.summary.split()[0] in out


def test_version_answers() -> None:
    from promptlearning.version import __version__

    assert str(_run("--version")["out"]).strip() == f"promptlearning {__version__}"


def test_methods_read_from_source_equal_the_registry() -> None:
    """The fast listing is only right if it equals what importing every method gives."""
    assert read_from_source() == read_from_registry()
    assert listed_methods() == read_from_registry()


def test_backbones_listing_matches_the_loaders() -> None:
    from promptlearning.backbone_catalog import PACKAGED
    from promptlearning.backbones import ZOO

    assert set(PACKAGED) == set(ZOO)
    out = str(_run("backbones")["out"])
    assert all(name in out for name in ZOO)


def test_the_command_on_the_line_still_gets_all_its_options() -> None:
    from promptlearning.cli.main import build_parser

    full = build_parser()
    lazy = build_parser(only=["train"])
    args_full = full.parse_args(["train", "--task", "mr", "--max-steps", "3"])
    args_lazy = lazy.parse_args(["train", "--task", "mr", "--max-steps", "3"])
    assert vars(args_full) == vars(args_lazy)
