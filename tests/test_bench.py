"""The bench: strict suite files, the SQLite store's claims, skip/resume, failures, workers, PEFT.

Everything runs on the tiny in-memory BERT and a small CSV task, so the whole file takes
seconds; no corpus or packaged backbone is fetched.
"""

from __future__ import annotations

import csv
import os
import random
import threading
from pathlib import Path

import pytest

from promptlearning.bench import runner as bench
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, job_key, load_suite
from promptlearning.cli.main import main
from promptlearning.errors import ConfigError, TrainingError, UnknownNameError
from tests.conftest import NEGATIVE, POSITIVE

SUITE = """
name: toy
backbone: tiny-bert
tasks: [{{name: toy, train_file: toy.csv}}]
shots: 4
seeds: {seeds}
max_test: 16
train: {{max_steps: 4, eval_every: 2, eval_batch_size: 8, train_past_perfect_dev: true}}
methods: {methods}
"""


def write_suite(tmp_path: Path, methods: str = "[linear_probe, p_tuning_v2]", seeds: str = "[1, 2]",
                text: str | None = None) -> Path:
    rng = random.Random(0)
    with (tmp_path / "toy.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(30):
            writer.writerow([f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", "positive"])
            writer.writerow([f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", "negative"])
    path = tmp_path / "suite.yaml"
    path.write_text(text if text is not None else SUITE.format(methods=methods, seeds=seeds))
    return path


# ---------------------------------------------------------------------------- suite files
def test_suite_expands_to_the_cross_product_with_stable_keys(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path))
    assert len(suite.jobs) == 4  # 1 task x 2 methods x 1 K x 2 seeds
    assert len({j.key for j in suite.jobs}) == 4
    assert [j.key for j in load_suite(tmp_path / "suite.yaml").jobs] == [j.key for j in suite.jobs]
    job = suite.jobs[0]
    assert job.config["train"]["seed"] == job.config["data"]["data_seed"]
    assert job.config["data"]["train_file"] == str((tmp_path / "toy.csv").resolve())
    assert job.config["method_options"] == {}  # resolved defaults of linear_probe (none)
    assert job_key(job.config) == job.key


def test_a_changed_data_file_is_a_new_job(tmp_path: Path) -> None:
    before = {j.key for j in load_suite(write_suite(tmp_path)).jobs}
    with (tmp_path / "toy.csv").open("a") as fh:
        fh.write("one more great movie,positive\n")
    assert not before & {j.key for j in load_suite(tmp_path / "suite.yaml").jobs}


@pytest.mark.parametrize("text, expected", [
    ("tasks: [mr]\nseeds: [1]\nmethods: [linear_probe]\nsteps: 3\n", "unknown key(s) steps"),
    ("tasks: [nosuchtask]\nseeds: [1]\nmethods: [linear_probe]\n", "unknown task"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [nosuchmethod]\n", "unknown method"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [{method: prompt_tuning, method_options: {tokens: 3}}]\n", "tokens"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [{method: prompt_tuning, lr: 0.1}]\n", "unknown key(s) lr"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [linear_probe]\ntrain: {steps: 3}\n", "unknown training option"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [{method: 'peft:prompt_tuning', method_options: {depth: 2}}]\n", "depth"),
    ("tasks: [mr]\nseeds: [1]\nmethods: ['peft:lora']\n", "unknown PEFT method"),
    ("tasks: [mr]\nseeds: [1]\nmethods: [linear_probe, linear_probe]\n", "appear twice"),
    ("tasks: [mr]\nmethods: [linear_probe]\n", "'seeds' is missing"),
    ("tasks: [mr]\nseeds: [1]\nbackbone: nosuch\nmethods: [linear_probe]\n", "unknown backbone"),
    ("tasks: [mr\n", "not valid YAML"),
])
def test_bad_suites_raise_one_line_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_prints_suite_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tasks: [mr]\nseeds: [1]\nmethods: [nosuchmethod]\n")
    assert main(["bench", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown method" in err and len(err.splitlines()) == 1
    assert main(["bench", str(tmp_path / "missing.yaml")]) == 2


def test_unknown_names_are_unknown_name_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tasks: [mr]\nseeds: [1]\nmethods: [nosuchmethod]\n")
    with pytest.raises(UnknownNameError):
        load_suite(path)


# ---------------------------------------------------------------------------- the store
def _jobs(n: int) -> list[Job]:
    configs = [{"method": "m", "task_name": "t", "backbone": "b", "data": {"shots": 4}, "train": {"seed": i}}
               for i in range(n)]
    return [Job(job_key(c), "m", c) for c in configs]


def test_claims_are_exclusive_across_connections(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        assert store.add_jobs(_jobs(40), "s") == 40
        assert store.add_jobs(_jobs(40), "s") == 0  # known jobs are not added twice
    taken: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        with ResultStore(tmp_path) as mine:
            while (job := mine.claim(f"localhost-x:{i}:t")) is not None:
                with lock:
                    taken.append(job.key)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(j.key for j in _jobs(40))  # every job once, none twice


def test_stale_running_rows_are_reclaimed(tmp_path: Path) -> None:
    import socket

    with ResultStore(tmp_path, stale_after=3600) as store:
        store.add_jobs(_jobs(2), "s")
        live = store.claim(f"{socket.gethostname()}:{os.getpid()}:a")
        dead = store.claim(f"{socket.gethostname()}:999999999:b")  # no such process
        assert live and dead
        again = store.claim("other")
        assert again is not None and again.key == dead.key  # the dead owner's job, not the live one
        assert store.claim("other") is None
        store.release(again.key, "other")
        assert store.status_of(again.key) == "pending"
    with ResultStore(tmp_path, stale_after=0) as store:  # an old heartbeat makes any owner stale
        assert store.claim("third") is not None


def test_a_job_whose_worker_keeps_dying_is_given_up(tmp_path: Path) -> None:
    import socket

    with ResultStore(tmp_path, max_attempts=2) as store:
        store.add_jobs(_jobs(1), "s")
        for _ in range(2):
            assert store.claim(f"{socket.gethostname()}:999999999:x") is not None
        assert store.claim("next") is None
        assert "Abandoned" in store.rows("failed")[0]["error"]


# ---------------------------------------------------------------------------- running
def test_bench_runs_records_measurements_and_skips_done_jobs(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    suite = load_suite(write_suite(tmp_path))
    counts = bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)
    assert counts["done"] == 4 and counts["failed"] == 0
    with ResultStore(tmp_path / "store") as store:
        rows = store.rows("done")
    result = rows[0]["result"]
    for key in ("dev_accuracy", "test_accuracy", "test_macro_f1", "dev_macro_f1", "trainable_params",
                "trainable_share", "seconds_per_step", "peak_memory_mb", "peak_memory_kind", "latency_overhead",
                "dev_curve", "machine"):
        assert result.get(key) is not None, key
    assert [step for step, _ in result["dev_curve"]] == [2, 4]
    assert "_model" not in result

    def boom(job: Job, log: object = None, workdir: object = None) -> dict[str, object]:
        raise AssertionError("a finished job must not run again")

    monkeypatch.setattr(bench, "execute_job", boom)
    assert bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)["done"] == 4


def test_latency_repeats_changes_how_a_job_is_timed_not_which_job_it_is(tmp_path: Path) -> None:
    """A suite may time fewer forwards (a 1.5B backbone on a CPU): the rows already stored still answer its jobs,
    and at 0 a job records no latency at all (the tables show a blank, not a made-up number)."""
    plain = load_suite(write_suite(tmp_path))
    path = tmp_path / "suite.yaml"
    path.write_text(path.read_text() + "latency_repeats: 0\n")
    quiet = load_suite(path)
    assert [j.key for j in quiet.jobs] == [j.key for j in plain.jobs]
    assert all(j.config["latency_repeats"] == 0 for j in quiet.jobs)
    assert "latency_repeats" not in plain.jobs[0].config  # absent at the default: the stored configs are unchanged
    counts = bench.run_bench(quiet, tmp_path / "store", threads=1, log=lambda _: None)
    assert counts["done"] == 4
    with ResultStore(tmp_path / "store") as store:
        result = store.rows("done")[0]["result"]
    assert result["test_accuracy"] is not None
    assert not [k for k in result if k.startswith("latency_")]


@pytest.mark.parametrize("value", ["-1", "two", "true"])
def test_a_bad_latency_repeats_is_refused_with_the_fix(tmp_path: Path, value: str) -> None:
    path = write_suite(tmp_path)
    path.write_text(path.read_text() + f"latency_repeats: {value}\n")
    with pytest.raises(ConfigError, match="latency_repeats must be an integer >= 0"):
        load_suite(path)


def test_a_sweep_leaves_the_callers_torch_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--threads is for the sweep: run from Python, it must not change later work in the process (tests)."""
    import torch

    seen: list[int] = []
    monkeypatch.setattr(bench, "execute_job", lambda job, log=None, workdir=None: (
        seen.append(torch.get_num_threads()), {"test_accuracy": 0.5})[1])
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    bench.run_bench(load_suite(write_suite(tmp_path, seeds="[1]")), tmp_path / "store", threads=other,
                    log=lambda _: None)
    assert seen == [other, other] and torch.get_num_threads() == before


def test_interrupt_puts_the_job_back_and_a_rerun_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = load_suite(write_suite(tmp_path))
    real = bench.execute_job
    ran: list[str] = []

    def interrupt_second(job: Job, log: object = None, workdir: object = None) -> dict[str, object]:
        if len(ran) == 1:
            raise KeyboardInterrupt
        ran.append(job.key)
        return real(job)

    monkeypatch.setattr(bench, "execute_job", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)
    with ResultStore(tmp_path / "store") as store:
        assert store.counts() == {"pending": 3, "running": 0, "done": 1, "failed": 0}
    monkeypatch.setattr(bench, "execute_job", lambda job, log=None, workdir=None: (ran.append(job.key), real(job))[1])
    assert bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)["done"] == 4
    assert len(ran) == 4 and len(set(ran)) == 4  # the finished job was not run again


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    methods = "[linear_probe, {method: p_tuning_v2, method_options: {layers: [7]}, label: bad_layers}]"
    suite = load_suite(write_suite(tmp_path, methods=methods, seeds="[1]"))
    counts = bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)
    assert counts == {"pending": 0, "running": 0, "done": 1, "failed": 1}
    with ResultStore(tmp_path / "store") as store:
        failed = store.rows("failed")[0]
    assert failed["error"].startswith("ConfigError: layers [7] out of range") and "\n" not in failed["error"]
    assert "Traceback" in failed["traceback"]


def test_a_diverged_loss_stops_only_that_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import promptlearning.runs.single_task as experiment

    real = experiment.run_experiment

    def nan_for_probe(cfg: object, **kwargs: object) -> dict[str, object]:
        if cfg.method == "linear_probe":  # type: ignore[attr-defined]
            raise TrainingError("the loss became nan at step 3; lower --lr or check the data")
        return real(cfg, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(experiment, "run_experiment", nan_for_probe)
    suite = load_suite(write_suite(tmp_path, seeds="[1]"))
    assert bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)["done"] == 1
    with ResultStore(tmp_path / "store") as store:
        assert store.rows("failed")[0]["error"] == "TrainingError: the loss became nan at step 3; lower --lr or check the data"
        assert bench.run_bench(suite, tmp_path / "store", threads=1, retry_failed=True, log=lambda _: None)["failed"] == 1


def test_two_worker_processes_share_the_sweep(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, seeds="[1]"))
    lines: list[str] = []
    assert bench.run_bench(suite, tmp_path / "store", threads=1, workers=2, log=lines.append)["done"] == 2
    with ResultStore(tmp_path / "store") as store:
        owners = {r["owner"].split(":")[1] for r in store.rows("done")}
        assert all(r["attempts"] == 1 for r in store.rows("done"))
    assert str(os.getpid()) not in owners  # the jobs ran in the spawned workers


def test_ctrl_c_on_the_command_stops_cleanly(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    text = SUITE.format(methods="[linear_probe]", seeds="[1, 2, 3, 4, 5, 6]").replace("max_steps: 4", "max_steps: 60")
    write_suite(tmp_path, text=text)
    proc = subprocess.Popen([sys.executable, "-m", "promptlearning.cli.main", "bench", str(tmp_path / "suite.yaml"),
                             "--store", str(tmp_path / "store"), "--threads", "1", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell running us in the background ignores SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[1/"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command to resume" in err and "Traceback" not in err
    with ResultStore(tmp_path / "store") as store:
        counts = store.counts()
    assert counts["running"] == 0 and counts["done"] >= 1 and counts["pending"] >= 1


def test_threads_per_worker_splits_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert bench.threads_per_worker(1) == cores
    assert bench.threads_per_worker(cores * 4) == 1


# ---------------------------------------------------------------------------- PEFT
def test_peft_options_are_checked_without_peft() -> None:
    from promptlearning.runs import peft_runner

    assert peft_runner.resolve_options("peft:prefix_tuning", {"num_tokens": 5})["num_tokens"] == 5
    with pytest.raises(ConfigError):
        peft_runner.resolve_options("peft:p_tuning", {"encoder_type": "GRU"})


@pytest.mark.parametrize("method", ["peft:prompt_tuning", "peft:prefix_tuning", "peft:p_tuning"])
def test_peft_methods_train_only_their_prompt_and_the_head(tmp_path: Path, method: str) -> None:
    pytest.importorskip("peft")
    import torch

    from promptlearning.runs.single_task import shared_backbone

    shared = shared_backbone("tiny-bert")
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    suite = load_suite(write_suite(tmp_path, methods=f"['{method}']", seeds="[1]"))
    result = bench.execute_job(suite.jobs[0])
    assert 0 < result["trainable_share"] < 0.5
    assert result["method"] == method and result["dev_curve"]
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())  # shared backbone untouched


def test_a_new_field_at_its_default_keeps_finished_rows(tmp_path: Path) -> None:
    old = {"method": "m", "task_name": "t", "backbone": "b", "data": {"shots": 4}, "train": {"seed": 1, "lr": 0.1}}
    new = {**old, "train": {**old["train"], "label_smoothing": 0.0}}
    changed = {**old, "train": {**old["train"], "label_smoothing": 0.1}}
    defaults = {"train": {"label_smoothing": 0.0}}
    with ResultStore(tmp_path) as store:
        store.add_jobs([Job(job_key(old), "m", old)], "s")
        store.finish(job_key(old), "me", {"test_accuracy": 0.5})
        assert store.add_jobs([Job(job_key(changed), "m", changed, defaults)], "s") == 1  # a real change runs
        assert store.add_jobs([Job(job_key(new), "m", new, defaults)], "s") == 0  # taken over, not re-run
        assert store.status_of(job_key(new)) == "done" and store.status_of(job_key(old)) is None


def _store_as_legacy_rows(tmp_path: Path, jobs: list[Job]) -> None:
    """Finished rows of ``jobs`` as they were keyed before jobs carried their learning rate (``lr: null``)."""
    with ResultStore(tmp_path / "store") as store:
        for job in jobs:
            legacy = {**job.config, "train": {**job.config["train"], "lr": None}}
            store.add_jobs([Job(job_key(legacy), job.label, legacy)], "toy")
            store.finish(job_key(legacy), "me", {"test_accuracy": 0.5})


def test_a_job_key_carries_the_learning_rate_training_uses(tmp_path: Path) -> None:
    from promptlearning.methods import get_method

    unset = load_suite(write_suite(tmp_path, methods="[prompt_tuning, finetune]")).jobs
    assert [j.config["train"]["lr"] for j in unset] == [get_method("prompt_tuning").default_lr] * 2 + [3e-5] * 2
    explicit = load_suite(write_suite(tmp_path, methods="[{method: prompt_tuning, train: {lr: 0.03}}]")).jobs
    assert [j.key for j in explicit] == [j.key for j in unset[:2]]  # the same run, however it is spelled


def test_legacy_rows_without_a_learning_rate_match_while_the_default_is_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = load_suite(write_suite(tmp_path, methods="[prompt_tuning, linear_probe]")).jobs
    _store_as_legacy_rows(tmp_path, jobs)
    assert main(["bench", str(tmp_path / "suite.yaml"), "--dry-run", "--store", str(tmp_path / "store")]) == 0
    assert "4 jobs: 4 done" in capsys.readouterr().out  # a dry run sees the rows it would take over
    with ResultStore(tmp_path / "store") as store:
        assert store.add_jobs(jobs, "toy") == 0  # taken over: trained at the rate the jobs now name
        assert {store.status_of(j.key) for j in jobs} == {"done"}
        assert store.rows()[0]["config"]["train"]["lr"] is not None


def test_a_changed_default_learning_rate_is_a_new_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlearning.methods import get_method

    _store_as_legacy_rows(tmp_path, load_suite(write_suite(tmp_path, methods="[prompt_tuning, linear_probe]")).jobs)
    monkeypatch.setattr(get_method("prompt_tuning"), "default_lr", 0.1)
    jobs = load_suite(tmp_path / "suite.yaml").jobs
    assert {j.config["train"]["lr"] for j in jobs if j.label == "prompt_tuning"} == {0.1}
    with ResultStore(tmp_path / "store") as store:
        assert store.add_jobs(jobs, "toy") == 2  # prompt_tuning's two seeds run again at the new rate
        assert {j.label: store.status_of(j.key) for j in jobs} == {"prompt_tuning": "pending", "linear_probe": "done"}


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("benchmarks/suites/*.yaml"))
                         + sorted(Path(__file__).parents[1].glob("benchmarks/pending/*.yaml")), ids=lambda p: p.stem)
def test_shipped_suites_parse(path: Path) -> None:
    """Every suite we ship, run or waiting in benchmarks/pending, is checked against the code that reads it."""
    suite = load_suite(path)
    assert suite.jobs
    if path.stem == "smoke":
        # the smoke suite checks the bench end to end on a fresh clone, so it must not find its jobs
        # already done in a tracked store: it writes to the git-ignored default, runs/bench/smoke
        assert suite.store is None
    else:
        assert suite.store is not None  # published suites write next to their results


def test_search_settings_reach_the_experiment_and_the_key(tmp_path: Path) -> None:
    from promptlearning.bench.suite import experiment_config

    methods = "[{method: spt, search: {budget: 1, search_steps: 2}}, {method: spt, label: spt2, search: {budget: 2}}]"
    suite = load_suite(write_suite(tmp_path, methods=methods, seeds="[1]"))
    first, second = suite.jobs
    assert experiment_config(first.config).search.budget == 1
    assert experiment_config(first.config).search.search_steps == 2
    assert first.key != second.key
    (tmp_path / "suite.yaml").write_text((tmp_path / "suite.yaml").read_text().replace("budget: 1,", "budgett: 1,"))
    with pytest.raises(ConfigError, match="budgett"):
        load_suite(tmp_path / "suite.yaml")


def test_two_suites_sharing_a_store_keep_both_descriptions(tmp_path: Path) -> None:
    path = write_suite(tmp_path, methods="[linear_probe]", seeds="[1]")
    other = tmp_path / "other.yaml"
    other.write_text(path.read_text().replace("\nname: toy\n", "\nname: toy2\ndescription: the second suite\n"))
    store_dir = tmp_path / "store"
    for suite_file in (path, other):
        bench.run_bench(load_suite(suite_file), store_dir, workers=1, log=lambda *_: None)
    with ResultStore(store_dir) as store:
        assert set(store.meta()["suites"]) == {"toy", "toy2"}


def test_rows_from_before_a_new_option_are_adopted_not_rerun(tmp_path: Path) -> None:
    """A sweep stored before the code gained a training or search option (at its default) keeps its rows."""
    import copy

    methods = "[{method: spt, search: {budget: 1, search_steps: 2}}]"
    suite = load_suite(write_suite(tmp_path, methods=methods, seeds="[1]"))
    job = suite.jobs[0]
    old = copy.deepcopy(job.config)
    del old["train"]["eval_at_start"], old["search"]["threshold"]  # fields added after the sweep began
    old_job = Job(job_key(old), job.label, old, job.defaults)
    with ResultStore(tmp_path / "store") as store:
        assert store.add_jobs([old_job], suite.name) == 1
        claimed = store.claim("me")
        assert claimed is not None and claimed.key == old_job.key
        store.finish(old_job.key, "me", {"test_accuracy": 0.5})
        assert store.add_jobs(suite.jobs, suite.name) == 0  # adopted: nothing new to run
        assert store.counts([j.key for j in suite.jobs])["done"] == 1
        changed = copy.deepcopy(job.config)
        changed["search"]["threshold"] = 0.7  # a real change of a setting is a new job
        assert store.add_jobs([Job(job_key(changed), job.label, changed, job.defaults)], suite.name) == 1
