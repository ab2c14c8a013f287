"""Published tables: every one regenerates byte for byte from its suite's store; the tables' own options."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from promptlearning.bench.report import claimed_by
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import load_suite
from promptlearning.bench.tables import table_module, write_table
from promptlearning.errors import ConfigError

ROOT = Path(__file__).parents[1]
PUBLISHED = [(path, entry) for path in sorted(ROOT.glob("benchmarks/suites/*.yaml"))
             for entry in load_suite(path).raw.get("report") or []]
#: files a table reads beside its output (measured by a timing script, not stored in the store)
SIDECARS = {"spt": ["spt_step_time.json"]}


@pytest.mark.parametrize("adopted", [False, True], ids=["as_stored", "taken_over"])
@pytest.mark.parametrize("path, entry", PUBLISHED, ids=lambda x: x.stem if isinstance(x, Path) else x["out"])
def test_published_tables_regenerate_from_their_stores(path: Path, entry: dict[str, Any], tmp_path: Path,
                                                        adopted: bool) -> None:
    """The committed Markdown is what the stored rows give today, on any machine (hours of compute, never rerun),
    and still after the suite's jobs took the rows over (their configs rewritten: the learning rate written out)."""
    suite = load_suite(path)
    assert suite.store is not None, f"{path.name} publishes a table but names no store"
    shutil.copy(suite.store / "results.sqlite", tmp_path / "results.sqlite")  # reading must not touch the tracked one
    with ResultStore(tmp_path) as store:
        if adopted:
            store.add_jobs(suite.jobs, suite.name)
        rows = claimed_by(suite, [r for r in store.rows("done") if r["result"]])
    published = (path.parent / entry["out"]).resolve()
    (tmp_path / "suites").mkdir()
    for name in SIDECARS.get(entry["table"], []):
        shutil.copy(published.parent / name, tmp_path / name)
    written = write_table({**entry, "out": f"../{published.name}"}, rows, tmp_path / "suites" / path.name, suite.name)
    assert written[0] == tmp_path / published.name
    assert written[0].read_text() == published.read_text(), (
        f"{published.name} no longer regenerates from its store: rerun `promptlearning report "
        f"{path.relative_to(path.parents[2])}` if its rows changed on purpose")


def test_a_table_finds_a_row_stored_before_a_config_field_was_added(tmp_path: Path) -> None:
    """The re-keying trap: a row whose config lacks a field the code gained since (at its default) is under an old
    key. Its suite's tables still claim it, as the next sweep would; a row whose field has another value is not it."""
    from tests.test_bench import write_suite

    suite = load_suite(write_suite(tmp_path))
    job = suite.jobs[0]
    field = next(k for k, v in job.config["train"].items() if k != "seed" and job.defaults["train"].get(k, object()) == v)
    old = {**job.config, "train": {k: v for k, v in job.config["train"].items() if k != field}}
    row = {"key": "stored-before", "suite": "older", "label": "old_name", "task": job.task, "config": old}
    other_value = {**job.config, "train": {**job.config["train"], field: "something else"}}
    stranger = dict(row, key="a-different-run", config=other_value)
    claimed = {r["key"]: r for r in claimed_by(suite, [row, stranger])}
    assert (claimed["stored-before"]["suite"], claimed["stored-before"]["label"]) == (suite.name, job.label)
    assert (claimed["a-different-run"]["suite"], claimed["a-different-run"]["label"]) == ("older", "old_name")


def _row(label: str, task: str, seed: int, acc: float, machine: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {"runner": "promptlearning", "method": label, "backbone": "tiny-bert", "data": {"shots": 4},
              "train": {"max_steps": 10, "batch_size": 8, "lr": None, "seed": seed}}
    result = {"test_accuracy": acc, "trainable_params": 10, "trainable_share": 0.001, "seconds_per_step": 0.5,
              **({"machine": machine} if machine else {})}
    return {"suite": "s", "label": label, "task": task, "seed": seed, "shots": 4, "config": config, "result": result}


def test_fewshot_table_shows_the_entry_methods_in_order(tmp_path: Path) -> None:
    rows = [_row("a", "t1", 1, 0.5), _row("a", "t1", 2, 0.7), _row("b", "t1", 1, 0.9), _row("b", "t2", 1, 0.8),
            _row("c", "t1", 1, 0.1)]
    out = tmp_path / "table.md"
    table_module("fewshot").write(rows, out, {"methods": ["b", "a"], "title": "Toy", "machine": "a box"}, "s")
    text = out.read_text()
    assert text.startswith("# Toy (4 shots per class, tiny-bert)\n")
    assert "Machine: a box." in text and "Command: `promptlearning bench benchmarks/suites/s.yaml`" in text
    lines = [x for x in text.splitlines() if x.startswith("| ") and not x.startswith("| method")]
    assert [x.split(" | ")[0] for x in lines] == ["| b", "| a"]  # c is not listed; order is the entry's
    assert lines[1] == "| a | 60.0 ± 14.1 (2) | – | 60.0 | 10 (0.10%) | 0.500 |"  # a never ran on t2


def test_fewshot_table_writes_its_notes_after_the_table(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    notes = ["## Why\n\nBecause.", "Second paragraph."]
    table_module("fewshot").write([_row("a", "t1", 1, 0.5)], out, {"notes": notes}, "s")
    text = out.read_text()
    assert text.endswith("| a | 50.0 ± 0.0 (1) | 50.0 | 10 (0.10%) | 0.500 |\n\n## Why\n\nBecause.\n\nSecond paragraph.\n")
    table_module("fewshot").write([_row("a", "t1", 1, 0.5)], out, {"notes": "One note.\n"}, "s")
    assert out.read_text().endswith("0.500 |\n\nOne note.\n")


def test_fewshot_table_states_the_machines_the_rows_recorded(tmp_path: Path) -> None:
    box = {"cpu": "Box CPU", "torch_threads": 1, "torch": "9.9", "promptlearning": "0.0"}
    out = tmp_path / "table.md"
    table_module("fewshot").write([_row("a", "t1", 1, 0.5, box)], out, {}, "s")
    assert "Machine: Box CPU, 1 CPU threads; torch 9.9; promptlearning 0.0." in out.read_text()
    table_module("fewshot").write([_row("a", "t1", 1, 0.5)], out, {}, "s")
    assert "Machine: not recorded." in out.read_text()


def test_convergence_table_refuses_a_reference_that_is_not_a_start(tmp_path: Path) -> None:
    row = _row("vocab", "t1", 1, 0.5)
    row["config"] |= {"kind": "heldout", "adapt": "prompt", "heldout_task": "t1", "trained_on": "target"}
    row["result"]["curve"] = [[0, 0.5], [5, 0.75]]
    with pytest.raises(ConfigError, match="reference 'random' is not one of its starts; choose one of: vocab"):
        table_module("meta_convergence").write([row], tmp_path / "c.md", {}, "s")


def test_a_row_two_suites_share_is_in_both_suites_tables(tmp_path: Path) -> None:
    """One store, two suites listing the same job: the row is stored under the suite that ran it first, and
    the other suite's table still shows it, under its own label."""
    common = "store: store\nbackbone: tiny-bert\ntasks: [mr]\nshots: 4\nseeds: [1]\ntrain: {max_steps: 2}\n"
    (tmp_path / "a.yaml").write_text("name: a\n" + common + "methods: [linear_probe]\n")
    (tmp_path / "b.yaml").write_text("name: b\n" + common + "methods: [{label: probe, method: linear_probe}]\n")
    a, b = load_suite(tmp_path / "a.yaml"), load_suite(tmp_path / "b.yaml")
    assert [j.key for j in a.jobs] == [j.key for j in b.jobs]
    row = {**_row("linear_probe", "mr", 1, 0.75), "suite": "a", "key": a.jobs[0].key}
    out = tmp_path / "b.md"
    table_module("fewshot").write([row], out, {}, "b")
    assert "no runs" in out.read_text()  # what the table saw before: the row is a's
    table_module("fewshot").write(claimed_by(b, [row]), out, {}, "b")
    assert "| probe | 75.0 ± 0.0 (1) |" in out.read_text()
