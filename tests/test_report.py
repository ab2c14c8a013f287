"""The report: built from a store alone (synthetic rows here: no training, milliseconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from promptlearning.bench.report import build_report, steps_to_reach
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, job_key
from promptlearning.cli.main import main
from promptlearning.errors import ConfigError

ACC = {"linear_probe": 0.60, "prompt_tuning": 0.70, "finetune": 0.80, "fixed_prompt": 0.55,
       "peft:prompt_tuning": 0.68}
PARAMS = {"linear_probe": 770, "prompt_tuning": 8450, "finetune": 22_700_000, "fixed_prompt": 0,
          "peft:prompt_tuning": 8450}


def _job(method: str, task: str, shots: int, seed: int) -> Job:
    config = {"method": method, "task_name": task, "backbone": "tiny-bert", "data": {"shots": shots},
              "train": {"seed": seed}}
    return Job(job_key(config), method, config)


def _result(method: str, task: str, shots: int, seed: int) -> dict[str, Any]:
    acc = ACC[method] + 0.01 * (seed % 3) + 0.002 * shots + (0.05 if task == "b" else 0.0)
    return {"test_accuracy": acc, "test_macro_f1": acc - 0.02, "dev_accuracy": acc + 0.01, "dev_macro_f1": acc,
            "trainable_params": PARAMS[method], "trainable_share": PARAMS[method] / 22_700_000,
            "seconds_per_step": 0.1 if method != "finetune" else 0.4, "latency_overhead": 1.2,
            "latency_model_ms": 12.0, "peak_memory_mb": 600.0, "peak_memory_kind": "process RSS high-water mark",
            "batch_size": 8, "dev_curve": [[10, acc * 0.5], [20, acc * 0.95], [30, acc]],
            "machine": {"cpu": "Test CPU"}}


def make_store(directory: Path, methods: list[str], shots: list[int], seeds: tuple[int, ...] = (1, 2, 3),
               fail: tuple[str, ...] = ()) -> None:
    with ResultStore(directory) as store:
        jobs = [_job(m, t, k, s) for m in methods for t in ("a", "b") for k in shots for s in seeds]
        store.add_jobs(jobs, "test")
        store.set_meta("machine", {"cpu": "Test CPU", "cpu_cores": 2, "torch_threads": 1, "torch": "2.x"})
        store.add_to_meta_list("commands", "promptlearning bench test.yaml")
        for job in jobs:
            method, task = job.config["method"], job.task
            k, seed = job.config["data"]["shots"], job.config["train"]["seed"]
            if method in fail:
                store.fail(job.key, "me", "PeftUnsupported: PEFT cannot build it")
            else:
                store.finish(job.key, "me", _result(method, task, k, seed))


def test_steps_to_reach() -> None:
    curve = [[10, 0.5], [20, 0.72], [30, 0.8], [40, 0.78]]
    assert steps_to_reach(curve, 0.9) == 20
    assert steps_to_reach(curve, 1.0) == 30
    assert steps_to_reach([], 0.9) is None


def test_report_tables_metrics_and_plots(tmp_path: Path) -> None:
    make_store(tmp_path, ["linear_probe", "prompt_tuning", "finetune"], [16])
    text = build_report(tmp_path).read_text()
    assert "| prompt_tuning |" in text and "| a | b | average |" in text
    assert "**89.2 ± 1.0**" in text  # finetune on b: the best, in bold (mean over seeds 1, 2, 3)
    assert "no `fixed_prompt` runs in this suite (arrives with the verbaliser issue)" in text.lower()
    assert "Generalisation to unseen tasks" in text
    assert "steps to 90%" in text and "| 20 ± 0 | 30 ± 0 | 160 ± 0 | 240 ± 0 |" in text
    assert "(0.25× ft)" in text  # step time relative to full fine-tuning
    assert "Test CPU" in text and "promptlearning bench test.yaml" in text
    for png in ("dev_curves.png", "accuracy_vs_params.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert not (tmp_path / "accuracy_vs_shots.png").exists()  # one K only


def test_a_job_that_skipped_the_latency_timing_shows_a_blank_not_zero(tmp_path: Path) -> None:
    """latency_repeats: 0 stores no latency: the compute table must not print it as 0.00x / 0.0 ms."""
    make_store(tmp_path, ["linear_probe", "prompt_tuning"], [16])
    with ResultStore(tmp_path) as store:
        for row in store.rows("done"):
            if row["config"]["method"] == "prompt_tuning":
                result = {k: v for k, v in row["result"].items() if not k.startswith("latency_")}
                store.finish(row["key"], "me", result)
    text = build_report(tmp_path).read_text()
    probe = next(line for line in text.splitlines() if line.startswith("| linear_probe | 770 "))
    prompt = next(line for line in text.splitlines() if line.startswith("| prompt_tuning | 8,450 "))
    assert "| 1.20× | 12.0 |" in probe
    assert "| – | – |" in prompt and "0.00×" not in prompt


def test_fixed_prompt_gain_is_paired_by_seed(tmp_path: Path) -> None:
    make_store(tmp_path, ["fixed_prompt", "prompt_tuning"], [16])
    text = build_report(tmp_path).read_text()
    assert "gain over `fixed_prompt`" in text
    assert "| prompt_tuning | +15.0 ± 0.0 | +15.0 ± 0.0 | +15.0 |" in text


def test_several_shots_give_the_shots_plot(tmp_path: Path) -> None:
    make_store(tmp_path, ["linear_probe", "prompt_tuning"], [4, 16], seeds=(1, 2))
    text = build_report(tmp_path).read_text()
    assert "## Results: tiny-bert, K = 4" in text and "## Results: tiny-bert, K = 16" in text
    assert (tmp_path / "accuracy_vs_shots.png").stat().st_size > 1000


def test_failures_and_peft_side_by_side(tmp_path: Path) -> None:
    make_store(tmp_path, ["prompt_tuning", "peft:prompt_tuning", "finetune"], [16], fail=("finetune",))
    text = build_report(tmp_path).read_text()
    assert "Side by side with Hugging Face PEFT" in text
    assert "| prompt_tuning vs peft:prompt_tuning | +2.0 (3) | +2.0 (3) |" in text
    assert "failed (3)" in text and "PeftUnsupported: PEFT cannot build it" in text


def test_empty_or_missing_store_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="no results store"):
        build_report(tmp_path / "nowhere")
    ResultStore(tmp_path).close()
    with pytest.raises(ConfigError, match="no finished runs"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_accuracy_against_k_compares_the_same_splits(tmp_path: Path) -> None:
    """Task a at K = 4 and 16, task b at K = 16 only: the K table averages task a alone, and the
    four metrics use K = 16, the K most runs share (not simply the largest)."""
    with ResultStore(tmp_path) as store:
        jobs = [_job("prompt_tuning", "a", k, s) for k in (4, 16) for s in (1, 2)]
        jobs += [_job("prompt_tuning", "b", 16, s) for s in (1, 2, 3)] + [_job("prompt_tuning", "a", 64, 1)]
        store.add_jobs(jobs, "test")
        for job in jobs:
            store.finish(job.key, "me", _result("prompt_tuning", job.task, job.config["data"]["shots"],
                                                job.config["train"]["seed"]))
    text = build_report(tmp_path).read_text()
    assert "## 1. Prompt effectiveness (tiny-bert, K = 16)" in text
    assert "every K has: a (seeds 1)" in text  # K = 64 has seed 1 only, b has no K = 4
    after = text[text.index("every K has"):].splitlines()
    row = next(line for line in after if line.startswith("| prompt_tuning | "))
    # task a, seed 1: 0.70 + 0.01 + 0.002 K  ->  71.8, 74.2, 83.8 (task b's +5 points would show otherwise)
    assert [c.strip().split(" ")[0] for c in row.split("|")[2:5]] == ["71.8", "74.2", "83.8"]


def test_gain_average_over_fewer_tasks_says_so(tmp_path: Path) -> None:
    make_store(tmp_path, ["fixed_prompt", "prompt_tuning"], [16])
    with ResultStore(tmp_path) as store:
        jobs = [_job("linear_probe", "a", 16, s) for s in (1, 2, 3)]  # one task of two
        store.add_jobs(jobs, "test")
        for job in jobs:
            store.finish(job.key, "me", _result("linear_probe", "a", 16, job.config["train"]["seed"]))
    section = build_report(tmp_path).read_text().split("## 1. Prompt effectiveness")[1].split("## 2.")[0]
    lp = next(line for line in section.splitlines() if line.startswith("| linear_probe |"))
    pt = next(line for line in section.splitlines() if line.startswith("| prompt_tuning |"))
    assert lp.endswith("(1 of 2 tasks) |") and "tasks)" not in pt
