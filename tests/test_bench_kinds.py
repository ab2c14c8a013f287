"""Job kinds end to end on the tiny backbones, and the shipped suites against their stores.

Each kind runs a toy suite (a couple of steps) through the bench: every row lands in the
store once, a rerun runs nothing, and the report (with the suite's published table) builds.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from promptlearning.backbones import Backbone
from promptlearning.bench import runner as bench
from promptlearning.bench.kinds import KINDS, get_kind, kind_of
from promptlearning.bench.report import build_report
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, Suite, load_suite
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

CURVES = """
name: toy_curves
store: store
kind: heldout
adapt: prompt
backbone: tiny-bert
protocol: cross_domain
tasks: [toy_phones]
train_tasks: [toy_movies, toy_films]
shots: [0, 2]
seeds: [1]
max_test: 8
train: {max_steps: 2, train_shots: 4, adapt_steps: 4, eval_every: 2}
methods:
  - {label: meta, method: prompt_tuning, method_options: {num_tokens: 2},
     meta: {meta_algorithm: reptile, inner_steps: 1, inner_lr: 1.0, tasks_per_step: 1, support_shots: 2}}
  - {label: vocab, method: prompt_tuning, method_options: {num_tokens: 2, init: vocab}, trained_on: target}
  - {label: random, method: prompt_tuning, method_options: {num_tokens: 2, init: random}, trained_on: target}
report:
  - {table: meta_convergence, out: curves.md}
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
    with ResultStore(tmp_path / "store") as store:  # a failed job names its error, not only a count
        errors = [f"{r['label']}: {r['error']}" for r in store.rows("failed")]
    assert counts == {"pending": 0, "running": 0, "done": len(suite.jobs), "failed": 0}, errors
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
    # a suite running some of the cross-task methods is summarised over those (it used to need all four)
    assert "## Summary" in summary and "Backbone tiny-bert," in summary
    assert "Meta methods against" not in summary and "hyperprompt" not in summary  # none ran: no empty rows


def test_heldout_curves_from_three_starts_end_to_end(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """adapt: prompt: one row per (task, K, seed, start) with the dev curve from step 0; K = 0 has nothing to tune."""
    rows, path = _run_twice(tmp_path, CURVES, monkeypatch)
    assert sorted((r["label"], r["shots"]) for r in rows) == [("meta", 2), ("random", 2), ("vocab", 2)]
    for r in rows:
        # dev at step 0, then every eval_every steps to adapt_steps, even past a perfect dev score
        assert [step for step, _ in r["result"]["curve"]] == [0, 2, 4]
        assert all(0 <= acc <= 1 for _, acc in r["result"]["curve"]) and 0 <= r["result"]["test_accuracy"] <= 1
        assert r["config"]["adapt"] == "prompt" and r["result"]["machine"]["torch"]
    meta = next(r for r in rows if r["label"] == "meta")
    assert meta["result"]["train_tasks"] == ["toy_movies", "toy_films"]
    assert len(list((tmp_path / "store" / "artifacts").glob("cross-*"))) == 1  # the start, trained once and kept
    build_report(path)
    table = (tmp_path / "curves.md").read_text()
    assert "Complete units (task × seed × K with all three starts): 1;" in table
    assert "| 2 | meta |" in table and "| 2 | random |" in table
    assert "steps to the random start's best" in table


def test_a_prompt_start_is_the_trained_prompt(bert: Backbone, toy_tasks: list[str],  # noqa: F811
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The curve of a trained start begins from that start's prompt (not the method's initialisation)."""
    import torch

    from promptlearning.bench.kinds import heldout_task
    from promptlearning.training import Trainer

    config = next(j.config for j in load_suite_text(CURVES).jobs if j.label == "vocab")
    start = torch.full((2, bert.info.hidden_size), 0.25)
    seen: list[torch.Tensor] = []
    fit = Trainer.fit

    def spy(self: Trainer) -> object:
        seen.append(self.model.method.soft_prompt())
        return fit(self)

    monkeypatch.setattr(Trainer, "fit", spy)
    heldout_task.adaptation_curve(bert, config, start)
    assert torch.equal(seen[0], start)
    heldout_task.adaptation_curve(bert, config)  # no start: the method's own (seeded) initialisation
    assert not torch.equal(seen[1], start)


def load_suite_text(text: str) -> Suite:
    """The suite a YAML text describes (its tasks must be registered)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(text)
        return load_suite(path)


def test_prompt_search_kind_end_to_end(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlearning.search import hybrid

    built: list[str] = []
    recipe = hybrid.hybrid_experiment

    def spy(cfg: Any, prompt: str, tokenizer: Any, init: str = "ids") -> Any:
        built.append(init)
        return recipe(cfg, prompt, tokenizer, init)

    monkeypatch.setattr(hybrid, "hybrid_experiment", spy)  # the job uses the library's recipe, not a copy
    rows, path = _run_twice(tmp_path, SEARCH, monkeypatch)
    assert built == ["ids"]
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
    ("tasks: [mr]\nseeds: [1]\nmethods: [linear_probe]\nreport: [{table: fewshot, out: x.md, colour: red}]\n",
     "unknown key.*colour.*valid: .*methods, title"),
    ("kind: heldout\nadapt: sideways\ntasks: [mr]\nseeds: [1]\nshots: [4]\nmethods: [{label: a, method: prompt_tuning}]\n",
     "adapt must be one of"),
    ("kind: heldout\ntasks: [mr]\nseeds: [1]\nshots: [4]\ntrain: {eval_every: 5}\n"
     "methods: [{label: a, method: prompt_tuning}]\n", "eval_every is for adapt: prompt"),
    ("kind: heldout\nadapt: prompt\ntasks: [mr]\nseeds: [1]\nshots: [4]\n"
     "methods: [{label: f, method: fixed_prompt, trained_on: none}]\n", "needs a prompt to start from"),
    ("kind: heldout\nadapt: prompt\ntasks: [mr]\nseeds: [1]\nshots: [0]\n"
     "methods: [{label: a, method: prompt_tuning, trained_on: target}]\n", "list shots above 0"),
    # an ensemble is trained by `train --ensemble`, never by a bench job: refused, not ignored
    ("tasks: [mr]\nseeds: [1]\nensemble: 3\nmethods: [linear_probe]\n", "unknown key.*ensemble.*train --ensemble N"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [{method: prompt_tuning, ensemble: 3}]\n", "ensemble.*train --ensemble N"),
    ("kind: tagging\ntasks: [pos_wsj]\nseeds: [1]\nmethods: [{method: prompt_tuning, ensemble: 3}]\n",
     "ensemble.*train --ensemble N"),
    ("kind: heldout\ntasks: [mr]\nseeds: [1]\nshots: [4]\nmethods: [{label: a, method: prompt_tuning, ensemble: 3}]\n",
     "ensemble.*train --ensemble N"),
    ("kind: prompt_search\ntasks: [mr]\nseeds: [1]\nensemble: 3\nmethods: [{label: f, fixed_prompt: true}]\n",
     "ensemble.*train --ensemble N"),
])
def test_bad_kind_suites_raise_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_suite(path)
    assert "\n" not in str(info.value)


def _has_results(path: Path) -> bool:
    store = load_suite(path).store
    return store is not None and (store / "results.sqlite").exists()


def test_only_gpu_sized_suites_wait_for_their_first_run() -> None:
    """A suite that names a store has its rows committed, unless it is GPU-sized (``*_gpu``) and not run yet."""
    waiting = [p.stem for p in SUITES if load_suite(p).store is not None and not _has_results(p)]
    assert [name for name in waiting if not name.endswith("_gpu")] == []


# sweeps stopped for lack of CPU time in the eighth session; `promptlearning bench <suite>` resumes them
IN_PROGRESS: set[str] = {"mpnet_classic", "mpnet_spt_seeds", "mpnet_loto_cpu"}


@pytest.mark.parametrize("path", [p for p in SUITES if _has_results(p) and p.stem in IN_PROGRESS],
                         ids=lambda p: p.stem)
def test_unfinished_suites_still_find_every_row_they_finished(path: Path, tmp_path: Path) -> None:
    """A sweep still in progress: each finished row is found by a job of its suite, under its own key or
    taken over by the job's new key (a field added at its default, the learning rate now written out),
    so none is orphaned by a code change."""
    suite = load_suite(path)
    assert suite.store is not None
    shutil.copy(suite.store / "results.sqlite", tmp_path / "results.sqlite")
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        done = {r for (r,) in db.execute("SELECT rowid FROM runs WHERE suite = ? AND status = 'done'", (suite.name,))}
    with ResultStore(tmp_path) as store:
        store.add_jobs(suite.jobs, suite.name)
    keys = [job.key for job in suite.jobs]
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        found = {r for (r,) in db.execute(f"SELECT rowid FROM runs WHERE status = 'done' AND key IN "
                                          f"({', '.join('?' * len(keys))})", keys)}
    assert done <= found  # (a job shared with another suite may be done under that suite's name)


@pytest.mark.parametrize("path", [p for p in SUITES if _has_results(p) and p.stem not in IN_PROGRESS],
                         ids=lambda p: p.stem)
def test_shipped_suites_find_their_stored_rows(path: Path, tmp_path: Path) -> None:
    """Hours of compute are keyed by these configs: every job of a published suite is finished in its store
    (after the adoption of rows that predate a new field at its default), so a rerun runs nothing. A job
    may have failed only as a training outcome the tables report (a diverged loss, a TrainingError), never
    by a crash."""
    suite = load_suite(path)
    assert suite.store is not None
    shutil.copy(suite.store / "results.sqlite", tmp_path / "results.sqlite")
    with ResultStore(tmp_path) as store:
        store.add_jobs(suite.jobs, suite.name)
        status = {job.key: store.status_of(job.key) for job in suite.jobs}
    assert set(status.values()) <= {"done", "failed"}
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        for key in (k for k, s in status.items() if s == "failed"):
            (error,) = db.execute("SELECT error FROM runs WHERE key = ?", (key,)).fetchone()
            assert error.startswith("TrainingError:"), f"{key}: {error}"


HELDOUT_LR = ("kind: heldout\ntasks: [mr]\ntrain_tasks: [cr]\nseeds: [1]\nshots: [4]\nmethods:\n"
              "  - {label: pt, method: prompt_tuning, trained_on: target}\n"
              "  - {label: moe, method: prompt_tuning, trained_on: train_tasks}\n"
              "  - {label: fixed, method: fixed_prompt, trained_on: none}\n")


def test_heldout_rows_stored_without_a_learning_rate_match_only_at_the_frozen_rate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held-out jobs that train carry the method's rate in their key; a row stored before (no lr) is taken over
    while that rate is the one it was trained at, and a changed default_lr runs the job again."""
    from promptlearning.methods import get_method

    path = tmp_path / "suite.yaml"
    path.write_text(HELDOUT_LR)
    jobs = load_suite(path).jobs
    assert {j.label: j.config["train"].get("lr") for j in jobs} == {"pt": 0.03, "moe": 0.03, "fixed": None}
    with ResultStore(tmp_path) as store:
        for job in jobs:
            legacy = {**job.config, "train": {k: v for k, v in job.config["train"].items() if k != "lr"}}
            store.record_done("s", job.label, job.task, legacy["method"], legacy["data"]["shots"],
                              legacy["train"]["seed"], legacy["backbone"], legacy, {"test_accuracy": 0.5})
    shutil.copy(tmp_path / "results.sqlite", tmp_path / "kept.sqlite")  # the legacy rows, before any take-over
    with ResultStore(tmp_path) as store:
        assert store.add_jobs(jobs, "s") == 0  # every row taken over: the default is the frozen rate
        assert {store.status_of(j.key) for j in jobs} == {"done"}
    monkeypatch.setattr(get_method("prompt_tuning"), "default_lr", 0.1)
    changed = load_suite(path).jobs
    with ResultStore(tmp_path / "kept.sqlite") as store:
        assert store.add_jobs(changed, "s") == 2  # both trained jobs run again at the new rate
        assert {j.label: store.status_of(j.key) for j in changed} == {"pt": "pending", "moe": "pending",
                                                                       "fixed": "done"}
