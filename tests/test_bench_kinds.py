"""Job kinds end to end on the tiny backbones, and the shipped suites against their stores.

Each kind runs a toy suite (a couple of steps) through the bench: every row lands in the
store once, a rerun runs nothing, and the report (with the suite's published table) builds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from promptlearning.bench import runner as bench
from promptlearning.bench.kinds import KINDS, get_kind, kind_of
from promptlearning.bench.report import build_report
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, load_suite
from promptlearning.errors import ConfigError

from .meta_toys import toy_tasks  # noqa: F401  (fixture)

ROOT = Path(__file__).parents[1]
SUITES = sorted(ROOT.glob("benchmarks/suites/*.yaml"))

HELDOUT = """
name: toy_heldout
store: store
kind: heldout
backbone: tiny-bert
protocol: cross_domain
tasks: [toy_phones]
train_tasks: [toy_movies, toy_films]
shots: [0, 2]
seeds: [1]
max_test: 8
train: {max_steps: 2, adapt_steps: 2, train_shots: 4}
methods:
  - {label: fixed_prompt, method: fixed_prompt, trained_on: none}
  - {label: prompt_tuning_single, method: prompt_tuning, method_options: {num_tokens: 2}, trained_on: target}
  - {label: multitask_prompt, method: multitask_prompt, method_options: {num_tokens: 2}}
  - {label: prompt_transfer, method: prompt_tuning, method_options: {num_tokens: 2}, trained_on: nearest_task}
report:
  - {table: heldout_summary, out: summary.md}
"""

SEARCH = """
name: toy_search
store: store
kind: prompt_search
backbone: tiny-llama
tasks: [toy_movies]
shots: 2
dev_shots: 2
seeds: [1]
max_test: 8
max_length: 32
budget: 24
batch_size: 8
train: {max_steps: 2, lr: 0.01, batch_size: 4, eval_batch_size: 8}
methods:
  - {label: fixed_prompt, fixed_prompt: true}
  - {label: evolution, search: evolution, options: {population: 2, elite: 1}}
  - {label: hybrid, hybrid: evolution, init: ids}
transfer: {from: toy_movies, to: [toy_phones], strategies: [evolution]}
report:
  - {table: prompt_search, out: search.md}
"""


def _never(job: Job, log: object = None, workdir: object = None) -> dict[str, object]:
    raise AssertionError(f"a finished job ran again: {job.label}")


def _run_twice(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, object]], Path]:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    suite = load_suite(path)
    ran: list[str] = []
    real = bench.execute_job

    def counting(job: Job, log: object = None, workdir: Path | None = None) -> dict[str, object]:
        ran.append(job.key)
        return real(job, workdir=workdir)

    monkeypatch.setattr(bench, "execute_job", counting)
    counts = bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)
    assert counts == {"pending": 0, "running": 0, "done": len(suite.jobs), "failed": 0}
    assert sorted(ran) == sorted(job.key for job in suite.jobs)  # each job ran exactly once
    monkeypatch.setattr(bench, "execute_job", _never)
    assert bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)["done"] == len(suite.jobs)
    with ResultStore(tmp_path / "store") as store:
        rows = store.rows()
    assert len(rows) == len(suite.jobs)
    return rows, path


def test_heldout_kind_end_to_end(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rows, path = _run_twice(tmp_path, HELDOUT, monkeypatch)
    labels = sorted((r["label"], r["shots"], r["seed"]) for r in rows)
    assert labels == [("fixed_prompt", 0, -1), ("multitask_prompt", 0, 1), ("multitask_prompt", 2, 1),
                      ("prompt_transfer", 0, 1), ("prompt_transfer", 2, 1), ("prompt_tuning_single", 2, 1)]
    assert all(kind_of(r["config"]) == "heldout" and 0 <= r["result"]["test_accuracy"] <= 1 for r in rows)
    by_label = {(r["label"], r["shots"]): r["result"] for r in rows}
    # the cross-task model is trained once and shared by the K = 0 and K = 2 jobs
    assert by_label[("multitask_prompt", 0)]["train_seconds"] == by_label[("multitask_prompt", 2)]["train_seconds"]
    assert by_label[("prompt_transfer", 2)]["source"] in ("toy_movies", "toy_films")
    assert len(list((tmp_path / "store" / "artifacts").glob("cross-*"))) == 1
    report = build_report(path)
    assert "## 2. Generalisation to unseen tasks" in report.read_text()
    summary = (tmp_path / "summary.md").read_text()
    assert "## toy_phones" in summary and "| multitask_prompt |" in summary


def test_prompt_search_kind_end_to_end(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rows, path = _run_twice(tmp_path, SEARCH, monkeypatch)
    results = {r["label"]: r["result"] for r in rows}
    assert set(results) == {"fixed_prompt", "evolution", "hybrid", "transfer:toy_movies>toy_phones:evolution"}
    assert results["evolution"]["forwards"] <= 24
    assert results["hybrid"]["from_prompt"] == results["evolution"]["template"]  # built on the search, not rerun
    assert results["transfer:toy_movies>toy_phones:evolution"]["prompt"] == results["evolution"]["template"]
    assert len(list((tmp_path / "store" / "artifacts").glob("search-*"))) == 1
    build_report(path)  # a store of published tables only: no report.md metrics, the table itself
    assert "| evolution |" in (tmp_path / "search.md").read_text()


def test_every_kind_has_a_module_with_expand_and_execute() -> None:
    for name in KINDS:
        module = get_kind(name)
        assert callable(module.expand) and callable(module.execute)


@pytest.mark.parametrize("text, expected", [
    ("kind: nope\ntasks: [mr]\nseeds: [1]\nmethods: [linear_probe]\n", "unknown kind"),
    ("kind: heldout\ntasks: [mr]\nseeds: [1]\nshots: [0]\nmethods: [{label: a, method: prompt_tuning, "
     "trained_on: elsewhere}]\n", "trained_on"),
    ("kind: heldout\ntasks: [mr]\nseeds: [1]\nshots: [0]\nmethods: [linear_probe]\n", "label and method"),
    ("kind: prompt_search\ntasks: [mr]\nseeds: [1]\nmethods: [{label: h, hybrid: evolution}]\n", "needs a search"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [linear_probe]\nreport: [{table: nope, out: x.md}]\n", "unknown report table"),
])
def test_bad_kind_suites_raise_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_suite(path)


@pytest.mark.parametrize("path", [p for p in SUITES if load_suite(p).store is not None], ids=lambda p: p.stem)
def test_shipped_suites_find_their_stored_rows(path: Path, tmp_path: Path) -> None:
    """Hours of compute are keyed by these configs: every job of a published suite is done in its store
    (after the adoption of rows that predate a new field at its default), so a rerun runs nothing."""
    suite = load_suite(path)
    assert suite.store is not None
    shutil.copy(suite.store / "results.sqlite", tmp_path / "results.sqlite")
    with ResultStore(tmp_path) as store:
        store.add_jobs(suite.jobs, suite.name)
        status = {store.status_of(job.key) for job in suite.jobs}
    assert status == {"done"}
