"""The Ray executor on a local Ray cluster (``ray.init(num_cpus=2)``): the same store rows as the local
executor; a job whose worker dies mid-way runs again once, a finished one never; a killed driver resumes.

Skipped, with the reason, only when the ``ray`` extra is not installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from promptlearning.bench.runner import run_bench
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, load_suite
from tests.test_bench import write_suite

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'promptlearning[ray]'")

from promptlearning.bench.executors.ray_cluster import RayExecutor  # noqa: E402

#: what a job computes, as opposed to when and where it ran
OUTCOME = ("test_accuracy", "test_macro_f1", "dev_accuracy", "dev_macro_f1", "dev_curve", "best_step", "steps",
           "trainable_params")


def _rows(store_dir: Path) -> dict[str, dict[str, Any]]:
    with ResultStore(store_dir) as store:
        return {r["key"]: r for r in store.rows()}


def quiet(_: str) -> None:
    pass


def test_ray_executor_stores_the_same_rows_as_local(tmp_path: Path, cluster: None) -> None:
    suite = load_suite(write_suite(tmp_path))
    assert run_bench(suite, tmp_path / "local", threads=1, log=quiet)["done"] == 4
    counts = run_bench(suite, tmp_path / "ray", threads=1, workers=2, log=quiet, executor=RayExecutor())
    assert counts == {"pending": 0, "running": 0, "done": 4, "failed": 0}
    local, remote = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert local.keys() == remote.keys()
    for key, row in local.items():
        assert remote[key]["config"] == row["config"] and remote[key]["attempts"] == 1
        assert {k: remote[key]["result"].get(k) for k in OUTCOME} == {k: row["result"].get(k) for k in OUTCOME}
        assert remote[key]["result"]["machine"]["cpu"]  # each row says where it ran
    owners = {r["owner"].split(":")[1] for r in remote.values()}
    assert owners == {str(os.getpid())}  # the driver alone wrote the store
    with ResultStore(tmp_path / "ray") as store:
        assert store.meta()["machine"]["executor"] == "ray"


def test_a_lost_worker_runs_its_job_again_once_and_a_finished_job_never(tmp_path: Path, cluster: None) -> None:
    suite = load_suite(write_suite(tmp_path, methods="[linear_probe]", seeds="[1, 2, 3]"))
    marks = tmp_path / "marks"
    marks.mkdir()

    def die_on_first_run_of_seed_2(job: Job, log: Any, workdir: Path | None = None) -> dict[str, Any]:
        from promptlearning.bench.runner import execute_job

        mark = marks / job.key
        before = mark.read_text() if mark.exists() else ""
        mark.write_text(before + "x")
        if job.config["train"]["seed"] == 2 and not before:
            os._exit(1)  # the worker process dies mid-job, as a killed or out-of-memory one does
        return execute_job(job, log, workdir=workdir)

    executor = RayExecutor(execute=die_on_first_run_of_seed_2)
    assert run_bench(suite, tmp_path / "store", threads=1, workers=2, log=quiet, executor=executor)["done"] == 3
    runs = {job.config["train"]["seed"]: (marks / job.key).read_text() for job in suite.jobs}
    assert runs == {1: "x", 2: "xx", 3: "x"}
    rows = _rows(tmp_path / "store")
    assert {rows[j.key]["attempts"] for j in suite.jobs if j.config["train"]["seed"] != 2} == {1}
    assert rows[next(j.key for j in suite.jobs if j.config["train"]["seed"] == 2)]["attempts"] == 2
    # run again: every job is done, none runs
    assert run_bench(suite, tmp_path / "store", threads=1, log=quiet, executor=executor)["done"] == 3
    assert {job.config["train"]["seed"]: (marks / job.key).read_text() for job in suite.jobs} == runs


def test_a_job_that_raises_is_a_failed_row_and_the_sweep_goes_on(tmp_path: Path, cluster: None) -> None:
    suite = load_suite(write_suite(tmp_path, methods="[linear_probe]", seeds="[1, 2]"))

    def raise_for_seed_1(job: Job, log: Any, workdir: Path | None = None) -> dict[str, Any]:
        if job.config["train"]["seed"] == 1:
            raise ValueError("a bad option\nsecond line")
        return {"test_accuracy": 0.5}

    counts = run_bench(suite, tmp_path / "store", threads=1, log=quiet, executor=RayExecutor(execute=raise_for_seed_1))
    assert counts["done"] == 1 and counts["failed"] == 1
    failed = next(r for r in _rows(tmp_path / "store").values() if r["status"] == "failed")
    assert failed["error"] == "ValueError: a bad option" and failed["attempts"] == 1


def _wait_for(store_dir: Path, ready: Any, proc: subprocess.Popen[bytes], seconds: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the driver stopped early: {proc.stderr.read().decode()[-800:] if proc.stderr else ''}"
        if (store_dir / "results.sqlite").is_file():
            rows = _rows(store_dir)
            if ready(rows):
                return rows
        time.sleep(0.2)
    raise AssertionError("the driver did not reach the point to kill it")


def test_a_killed_driver_resumes_without_running_a_finished_job_again(tmp_path: Path, cluster: None) -> None:
    suite_file = write_suite(tmp_path, methods="[p_tuning_v2]", seeds="[1, 2, 3]")
    suite_file.write_text(suite_file.read_text().replace("max_steps: 4", "max_steps: 40"))
    store_dir = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "promptlearning", "bench", str(suite_file), "--executor", "ray",
                             "--workers", "1", "--threads", "1", "--store", str(store_dir), "--quiet", "--no-report"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        at_kill = _wait_for(store_dir, lambda rows: [r["status"] for r in rows.values()].count("done") >= 1
                            and any(r["status"] == "running" for r in rows.values()), proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, at once
        proc.wait()
    finished = {k: r["finished_at"] for k, r in at_kill.items() if r["status"] == "done"}
    interrupted = [k for k, r in _rows(store_dir).items() if r["status"] == "running"]
    assert finished and len(interrupted) == 1
    suite = load_suite(suite_file)
    counts = run_bench(suite, store_dir, threads=1, workers=1, log=quiet, executor=RayExecutor())
    assert counts["done"] == 3
    rows = _rows(store_dir)
    assert {k: rows[k]["finished_at"] for k in finished} == finished  # never ran again
    assert all(rows[k]["attempts"] == 1 for k in finished)
    assert rows[interrupted[0]]["attempts"] == 2  # the job in flight ran once more


def test_asking_for_gpus_the_cluster_lacks_is_refused(tmp_path: Path, cluster: None) -> None:
    from promptlearning.errors import ConfigError

    suite = load_suite(write_suite(tmp_path, methods="[linear_probe]", seeds="[1]"))
    with pytest.raises(ConfigError, match="has 0 GPU"):
        run_bench(suite, tmp_path / "store", log=quiet, executor=RayExecutor(gpus=1))
