"""Metric 2 of the report: held-out-task rows recorded with ``record_done`` (synthetic, no training)."""

from __future__ import annotations

from pathlib import Path

from promptlearning.bench.heldout import NOTHING
from promptlearning.bench.report import build_report
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, job_key

from .test_report import make_store

ROOT = Path(__file__).parents[1]


def _heldout(store: ResultStore, task: str, label: str, k: int, seed: int | None, acc: float) -> str:
    method = {"prompt_tuning_single": "prompt_tuning"}.get(label, label)
    cross = label not in ("fixed_prompt", "prompt_tuning_single")
    config = {"evaluation": "heldout", "protocol": "leave_one_task_out", "heldout_task": task, "label": label,
              "method": method, "train_tasks": sorted({"mr", "subj", "cr"} - {task}) if cross else [],
              "backbone": "tiny-bert", "data": {"shots": k}, "train": {"seed": seed}}
    return store.record_done("meta_loto", label, task, method, k, seed, "tiny-bert", config,
                             {"test_accuracy": acc, "seconds": 1.0})


HELDOUT_ROWS = [  # task, label, K, seed, accuracy
    ("cr", "fixed_prompt", 0, None, 0.55), ("subj", "fixed_prompt", 0, None, 0.45),
    ("cr", "prompt_tuning_single", 4, 13, 0.72), ("cr", "prompt_tuning_single", 4, 21, 0.74),
    ("subj", "prompt_tuning_single", 4, 13, 0.50), ("subj", "prompt_tuning_single", 4, 21, 0.54),
    ("cr", "multitask_prompt", 0, 13, 0.58), ("cr", "multitask_prompt", 0, 21, 0.60),
    ("subj", "multitask_prompt", 0, 13, 0.40), ("subj", "multitask_prompt", 0, 21, 0.40),
    ("cr", "multitask_prompt", 4, 13, 0.70), ("cr", "multitask_prompt", 4, 21, 0.80),
    ("subj", "multitask_prompt", 4, 13, 0.60), ("subj", "multitask_prompt", 4, 21, 0.70),
    ("hedge", "fixed_prompt", 0, None, 0.50),  # no other cell: left out of the average
]


def _section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def _outside_metric2(text: str) -> str:
    """Everything the held-out rows must not change: results tables and metrics 1, 3 and 4."""
    body = text.split("## Results", 1)[1]
    return body.split("## 2. Generalisation", 1)[0] + body.split("## 3. ", 1)[1]


def test_metric2_tables_and_no_leak_into_other_sections(tmp_path: Path) -> None:
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    for directory in (plain, mixed):
        make_store(directory, ["linear_probe", "prompt_tuning"], [16])
    with ResultStore(mixed) as store:
        for row in HELDOUT_ROWS:
            _heldout(store, *row)
    text = build_report(mixed).read_text()
    metric2 = _section(text, "## 2. Generalisation to unseen tasks", "## 3. ")
    assert "Leave one task out (suite `meta_loto`)" in metric2
    assert "trained on all the other tasks" in metric2 and "K = 0: none" in metric2
    cr = _section(metric2, "#### cr: related (sentiment)", "####")
    assert "| method | K = 0 | K = 4 |" in cr
    assert "| fixed_prompt | 55.0 (n=1) | – |" in cr
    assert "| prompt_tuning_single | – | 73.0 ± 1.4 (n=2) |" in cr
    assert "| multitask_prompt | **59.0 ± 1.4 (n=2)** | **75.0 ± 7.1 (n=2)** |" in cr
    assert "Cross-task methods trained on: mr, subj." in cr
    assert "#### subj: unrelated" in metric2 and "#### hedge: unrelated" in metric2
    average = metric2.split("#### Average over held-out tasks", 1)[1]
    assert "Over cr, subj" in average and "left out, cells missing: hedge" in average
    assert "| fixed_prompt | **50.0 (n=1)** | – |" in average
    assert "| prompt_tuning_single | – | 62.5 ± 2.1 (n=2) |" in average
    assert "| multitask_prompt | 49.5 ± 0.7 (n=2) | **70.0 ± 7.1 (n=2)** |" in average
    assert NOTHING not in text
    assert "15 of the done rows are held-out-task evaluations" in text
    # the results tables and metrics 1, 3, 4 are exactly those of the same store without held-out rows
    plain_text = build_report(plain).read_text()
    assert NOTHING in plain_text
    assert _outside_metric2(text) == _outside_metric2(plain_text)
    assert "multitask_prompt" not in _outside_metric2(text) and "No `fixed_prompt` runs" in text


def test_record_done_is_idempotent_and_keyed_by_config(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        key = _heldout(store, "cr", "multitask_prompt", 4, 13, 0.70)
        again = _heldout(store, "cr", "multitask_prompt", 4, 13, 0.75)
        fixed = _heldout(store, "cr", "fixed_prompt", 0, None, 0.55)
        rows = {r["key"]: r for r in store.rows()}
    assert key == again and len(rows) == 2
    assert key == job_key(rows[key]["config"])
    assert rows[key]["status"] == "done" and rows[key]["result"]["test_accuracy"] == 0.75
    assert rows[fixed]["seed"] == -1


def test_bench_never_claims_or_adopts_heldout_rows(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        _heldout(store, "cr", "prompt_tuning_single", 4, 13, 0.72)  # method prompt_tuning, cr, K=4, seed 13
        config = {"method": "prompt_tuning", "task_name": "cr", "backbone": "tiny-bert", "data": {"shots": 4},
                  "train": {"seed": 13}}
        job = Job(job_key(config), "prompt_tuning", config)
        assert store.add_jobs([job], "suite") == 1  # a new job, not the held-out row taken over
        assert store.counts([job.key]) == {"pending": 1, "running": 0, "done": 0, "failed": 0}
        claimed = store.claim("me")
        assert claimed is not None and claimed.key == job.key
        assert store.claim("me") is None
