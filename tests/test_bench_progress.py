"""The bench's progress lines say how long the rest of the sweep will take."""

from __future__ import annotations

from pathlib import Path

from promptlearning.bench import runner as bench
from promptlearning.bench.suite import load_suite
from tests.test_bench import write_suite


def test_time_left_comes_from_the_mean_job_time_and_the_workers() -> None:
    pace = bench.Pace()
    assert pace.left({"pending": 3, "running": 1}) == ""  # nothing measured yet
    pace.add(20.0)
    pace.add(40.0)
    assert pace.left({"pending": 3, "running": 1, "done": 2}) == ", about 2 min left"  # 30 s x 4 jobs / 1 worker
    assert pace.left({"pending": 2, "running": 2, "done": 2}) == ", about 60 s left"  # 30 s x 4 jobs / 2 workers
    assert pace.left({"pending": 0, "running": 0, "done": 4}) == ""


def test_every_progress_line_but_the_last_has_an_estimate(tmp_path: Path) -> None:
    lines: list[str] = []
    bench.run_bench(load_suite(write_suite(tmp_path)), tmp_path / "store", threads=1, log=lines.append)
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 4
    assert all("left)" in line for line in progress[:-1]) and "left" not in progress[-1]
