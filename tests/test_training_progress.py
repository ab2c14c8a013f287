"""Progress that suits a log file: one line per evaluation, the peak learning rate, the loss of short runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlearning.backbones import Backbone
from promptlearning.data.batching import encode
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig, Trainer

from .conftest import toy_examples


def _fit(backbone: Backbone, out: Path, **overrides: object) -> None:
    model = PromptModel.build(backbone, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 3})
    cfg = TrainConfig(**{"max_steps": 12, "eval_every": 4, "lr": 0.05, "head_lr": 0.02,
                         "train_past_perfect_dev": True, **overrides})  # type: ignore[arg-type]
    Trainer(model, cfg, encode(backbone.tokenizer, toy_examples(8, seed=1), 32),
            encode(backbone.tokenizer, toy_examples(4, seed=2), 32), out).fit()


def test_redirected_output_gets_one_line_per_evaluation_and_the_peak_lr(bert: Backbone, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _fit(bert, tmp_path)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    steps = [line for line in text.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["4/12", "8/12", "12/12"]
    assert all("dev " in line and "left ~" in line for line in steps)
    assert "\r" not in text and "it/s" not in text and "step/s" not in text  # no progress-bar redraws
    groups = next(line for line in text.splitlines() if line.startswith("optimizer groups"))
    assert "lr=0.05 " in groups and "lr=0.02 " in groups  # what was set, not the first warm-up step's value


def test_a_run_shorter_than_the_log_interval_still_logs_its_loss(bert: Backbone, tmp_path: Path) -> None:
    _fit(bert, tmp_path, max_steps=3, eval_every=3, log_every=10, quiet=True)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [3]
