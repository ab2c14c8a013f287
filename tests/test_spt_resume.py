"""SPT (`train --method spt`) killed anywhere resumes with `--resume` and ends where an uninterrupted run
ends: inside the layer search, between the search and the retraining, and inside the retraining.

The search is a bi-level trainer with its own checkpoints (``OUTPUT/search/checkpoint``); the
retraining is a plain trainer (``OUTPUT/checkpoint``). A resume replays nothing the kill did not
lose: the search goes on from its last checkpoint (or is read back whole once it finished), the
retraining from its own (or from its first step when it had none yet).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from promptlearning.cli.main import main
from promptlearning.training.gate_search import BilevelTrainer
from promptlearning.training.trainer import Trainer

from .conftest import NEGATIVE, POSITIVE
from .resume_helper import Cut, assert_same_files, cli_killed_then_resumed, run_interrupted_then_resumed

SEARCH_STEPS, RETRAIN_STEPS = 6, 6


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    rng = random.Random(3)
    path = tmp_path / "toy.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(12):
            writer.writerow([f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", "pos"])
            writer.writerow([f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", "neg"])
    return path


def spt_argv(toy_file: Path) -> Callable[[Path], list[str]]:
    def argv(directory: Path) -> list[str]:
        return ["train", "--train-file", str(toy_file), "--backbone", "tiny-bert", "--method", "spt", "--shots", "4",
                "--layer-budget", "1", "--search-steps", str(SEARCH_STEPS), "--max-steps", str(RETRAIN_STEPS),
                "--eval-every", "2", "--checkpoint-every", "2", "--head-dropout", "0.2", "--quiet", "--no-baseline",
                "--output", str(directory)]
    return argv


def _same_run(whole: Path, resumed: Path) -> None:
    """The resumed run's adapter, checkpoint, search record and results equal the uninterrupted run's."""
    assert_same_files(whole, resumed, ["best/adapter_model.safetensors", "checkpoint/training_state.safetensors",
                                       "search/checkpoint/training_state.safetensors"])
    configs = [_untimed(json.loads((d / "best" / "adapter_config.json").read_text())) for d in (whole, resumed)]
    assert configs[0] == configs[1], "best/adapter_config.json differs (beyond timings)"
    a, b = (json.loads((d / "results.json").read_text())["results"] for d in (whole, resumed))
    for key in ("chosen_layers", "final_gates", "search_steps", "steps", "best_step", "dev_accuracy", "test_accuracy",
                "dev_curve"):
        assert a[key] == b[key], f"{key} differs: {a[key]!r} != {b[key]!r}"


def _untimed(value: Any) -> Any:
    """A JSON value without its wall-clock timings (``*_seconds``), which no two runs share."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _interrupted(monkeypatch: pytest.MonkeyPatch, toy_file: Path, root: Path, cut: Cut) -> dict[str, int]:
    argv = spt_argv(toy_file)

    def run(directory: Path, resume: bool) -> int:
        return main([*argv(directory), *(["--resume"] if resume else [])])

    result = run_interrupted_then_resumed(monkeypatch, run, root, cut)
    assert result.whole == 0 and result.resumed == 0
    _same_run(result.whole_dir, result.cut_dir)
    return result.calls


def test_spt_killed_inside_the_search_resumes_from_the_search_checkpoint(
        monkeypatch: pytest.MonkeyPatch, toy_file: Path, tmp_path: Path) -> None:
    calls = _interrupted(monkeypatch, toy_file, tmp_path, Cut.at_step(BilevelTrainer, 3))
    # cut in step 3, after the checkpoint of step 2: the resume runs search steps 2..5 only
    assert calls == {"whole": SEARCH_STEPS, "cut": 4, "resumed": SEARCH_STEPS - 2}


def test_spt_killed_before_the_first_search_checkpoint_starts_the_search_afresh(
        monkeypatch: pytest.MonkeyPatch, toy_file: Path, tmp_path: Path) -> None:
    calls = _interrupted(monkeypatch, toy_file, tmp_path, Cut.at_step(BilevelTrainer, 1))
    assert calls == {"whole": SEARCH_STEPS, "cut": 2, "resumed": SEARCH_STEPS}


def test_spt_killed_before_the_retrainings_first_checkpoint_keeps_the_search(
        monkeypatch: pytest.MonkeyPatch, toy_file: Path, tmp_path: Path) -> None:
    # cut in the retraining's step 1 (its first checkpoint comes after step 2): the search is not run again
    calls = _interrupted(monkeypatch, toy_file, tmp_path, Cut.at_step(Trainer, 1))
    assert calls == {"whole": RETRAIN_STEPS, "cut": 2, "resumed": RETRAIN_STEPS}


def test_spt_killed_inside_the_retraining_resumes_from_its_checkpoint(
        monkeypatch: pytest.MonkeyPatch, toy_file: Path, tmp_path: Path) -> None:
    calls = _interrupted(monkeypatch, toy_file, tmp_path, Cut.at_step(Trainer, 3))
    assert calls == {"whole": RETRAIN_STEPS, "cut": 4, "resumed": RETRAIN_STEPS - 2}


def test_spt_sigkilled_inside_the_search_resumes_identically(monkeypatch: pytest.MonkeyPatch, toy_file: Path,
                                                             tmp_path: Path) -> None:
    # the 4th search step is step 3: killed after the checkpoint of step 2, with nothing flushed or cleaned up
    result = cli_killed_then_resumed(monkeypatch, spt_argv(toy_file), tmp_path,
                                     Cut.at_call(BilevelTrainer, "training_step", 4))
    assert result.whole == 0 and result.resumed == 0
    assert result.calls["resumed"] == SEARCH_STEPS - 2
    _same_run(result.whole_dir, result.cut_dir)
    state = load_file(str(result.cut_dir / "search" / "checkpoint" / "training_state.safetensors"))
    assert state  # the search's checkpoint is kept for a later resume
