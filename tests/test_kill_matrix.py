"""`train` killed with SIGKILL (nothing flushed, no cleanup) and resumed with `--resume` ends where an
uninterrupted run ends, bit for bit, having done only the steps the kill lost. (SPT: test_spt_resume.py;
search: test_search_strategy_contract.py; bench: test_bench.py; every trainer strategy, multi-task included,
cut in-process: test_trainer_strategy_contract.py.)"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from promptlearning.training.trainer import Trainer

from .conftest import NEGATIVE, POSITIVE
from .resume_helper import Cut, assert_same_files, cli_killed_then_resumed

STEPS = 6
COMMON = ["--backbone", "tiny-bert", "--shots", "4", "--max-steps", str(STEPS), "--eval-every", "2",
          "--checkpoint-every", "2", "--head-dropout", "0.2", "--quiet", "--no-baseline"]


def _toy_file(path: Path) -> Path:
    rng = random.Random(7)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(12):
            writer.writerow([f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", "pos"])
            writer.writerow([f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", "neg"])
    return path


def _check(result_dirs: tuple[Path, Path]) -> None:
    whole, cut = result_dirs
    assert_same_files(whole, cut, ["best/adapter_model.safetensors", "checkpoint/training_state.safetensors"])
    a, b = (json.loads((d / "results.json").read_text())["results"] for d in (whole, cut))
    for key in ("steps", "best_step", "dev_accuracy", "test_accuracy", "dev_curve"):
        assert a[key] == b[key], f"{key} differs: {a[key]!r} != {b[key]!r}"


def _killed(monkeypatch: pytest.MonkeyPatch, root: Path, argv: Callable[[Path], list[str]]) -> None:
    # the 4th training step is step 3: killed after the checkpoint of step 2
    result = cli_killed_then_resumed(monkeypatch, argv, root, Cut.at_call(Trainer, "training_step", 4))
    assert result.whole == 0 and result.resumed == 0
    assert result.calls["whole"] == STEPS and result.calls["resumed"] == STEPS - 2  # only steps 2..5 again
    _check((result.whole_dir, result.cut_dir))


def test_sigkilled_single_task_train_resumes_identically(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = _toy_file(tmp_path / "toy.csv")
    _killed(monkeypatch, tmp_path, lambda d: ["train", "--train-file", str(data), "--method", "p_tuning_v2",
                                              *COMMON, "--output", str(d)])

