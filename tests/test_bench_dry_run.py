"""`bench --dry-run` lists every kind of job: held-out and search jobs have no max_steps of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.cli.main import main

SUITES = Path(__file__).resolve().parent.parent / "benchmarks" / "suites"


@pytest.mark.parametrize("suite", ["meta_loto.yaml", "prompt_search.yaml"])
def test_dry_run_lists_jobs_of_every_kind(suite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(SUITES / suite), "--dry-run", "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith(f"store {tmp_path / 'store'}")
    assert " steps " in out and not (tmp_path / "store").exists()  # a dry run never creates a store
