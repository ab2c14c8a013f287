"""`report --csv/--json`: every row of a store leaves SQLite, lossless in JSON, flat in CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from promptlearning.bench.store import ResultStore
from promptlearning.cli.main import main
from tests.test_report import make_store


def _rows(directory: Path) -> list[dict[str, object]]:
    with ResultStore(directory) as store:
        return store.rows()


def test_json_export_holds_every_row_with_config_and_result(tmp_path: Path) -> None:
    make_store(tmp_path, ["linear_probe", "prompt_tuning"], [16], fail=("prompt_tuning",))
    assert main(["report", str(tmp_path), "--json", str(tmp_path / "rows.json")]) == 0
    exported = json.loads((tmp_path / "rows.json").read_text())
    stored = _rows(tmp_path)
    assert [r["key"] for r in exported] == [r["key"] for r in stored]
    for out, row in zip(exported, stored, strict=True):
        assert out["config"] == row["config"] and out["result"] == row["result"]
        assert out["status"] == row["status"] and out["error"] == row["error"]
    assert {r["status"] for r in exported} == {"done", "failed"}
    assert not (tmp_path / "report.md").exists()  # an export replaces the report


def test_csv_export_to_stdout_flattens_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_store(tmp_path, ["linear_probe"], [16])
    assert main(["report", str(tmp_path), "--csv", "-"]) == 0
    out = capsys.readouterr().out
    table = list(csv.DictReader(io.StringIO(out)))
    stored = {r["key"]: r for r in _rows(tmp_path)}
    assert len(table) == len(stored) == 6
    for line in table:
        row = stored[line["key"]]
        assert float(line["result.test_accuracy"]) == pytest.approx(row["result"]["test_accuracy"])
        assert json.loads(line["result.dev_curve"]) == row["result"]["dev_curve"]
        assert json.loads(line["config"]) == row["config"]
        assert line["seed"] == str(row["seed"]) and line["error"] == ""


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "none"), "--csv", "-"]) == 2
    make_store(tmp_path, ["linear_probe"], [16])
    assert main(["report", str(tmp_path), "--csv", "-", "--json", "-"]) == 2
    assert main(["report", str(tmp_path), "--csv", str(tmp_path)]) == 2
    assert main(["report", str(tmp_path), "--json", str(tmp_path / "no" / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 4


def test_an_export_replaces_only_an_earlier_export(tmp_path: Path) -> None:
    make_store(tmp_path, ["linear_probe"], [16])
    notes = tmp_path / "notes.csv"
    notes.write_text("the user's own notes\n")
    assert main(["report", str(tmp_path), "--csv", str(notes)]) == 2
    assert notes.read_text() == "the user's own notes\n"
    out = tmp_path / "rows.csv"
    for _ in range(2):  # the second run replaces the first export
        assert main(["report", str(tmp_path), "--csv", str(out), "--json", str(tmp_path / "rows.json")]) == 0
    assert len(out.read_text().splitlines()) == 7
