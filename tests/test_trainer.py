"""The plain trainer: learning, best-on-dev, early stop, exact resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import encode
from promptlearning.errors import TrainingError
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig, Trainer
from promptlearning.training.checkpoint import load_checkpoint

from .conftest import toy_examples
from .resume_helper import Cut, assert_same_files, assert_same_tensors, run_interrupted_then_resumed


def _trainer(backbone: Backbone, out: Path | None, cls: type[Trainer] = Trainer, **overrides: object) -> Trainer:
    model = PromptModel.build(backbone, "p_tuning_v2", ["neg", "pos"], method_options={"num_tokens": 3})
    model.head.dropout.p = 0.2  # dropout makes the RNG state matter for exact resume
    cfg = TrainConfig(**{"max_steps": 24, "eval_every": 6, "checkpoint_every": 6, "quiet": True, "lr": 0.05,
                         "train_past_perfect_dev": True, **overrides})  # type: ignore[arg-type]
    train = encode(backbone.tokenizer, toy_examples(8, seed=1), 32)
    dev = encode(backbone.tokenizer, toy_examples(4, seed=2), 32)
    return cls(model, cfg, train, dev, out)


def test_training_lowers_the_loss_and_keeps_the_backbone(bert: Backbone, tmp_path: Path) -> None:
    before = {k: v.clone() for k, v in bert.state_dict().items()}
    result = _trainer(bert, tmp_path).fit()
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[-1] < losses[0]
    assert result.steps == 24 and 0 <= result.best_dev <= 1
    assert (tmp_path / "best" / "adapter_config.json").is_file()
    assert all(torch.equal(before[k], v) for k, v in bert.state_dict().items())


def test_resume_after_kill_continues_exactly(bert: Backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(directory: Path, resume: bool) -> dict[str, torch.Tensor]:
        _trainer(bert, directory).fit(resume=resume)
        return load_checkpoint(directory / "checkpoint")[0]  # weights, optimizer state and RNG states

    def killed_after_the_checkpoint_of_step_12(directory: Path) -> None:
        assert json.loads((directory / "checkpoint/trainer_state.json").read_text())["state"]["step"] == 12

    result = run_interrupted_then_resumed(monkeypatch, run, tmp_path, Cut.at_step(Trainer, 15),
                                          before_resume=killed_after_the_checkpoint_of_step_12)
    assert_same_tensors(result.whole, result.resumed, "checkpoint")
    assert result.calls == {"whole": 24, "cut": 16, "resumed": 12}  # the resume did only steps 12..23
    assert_same_files(result.whole_dir, result.cut_dir, ["metrics.jsonl"])


def test_resume_without_checkpoint_is_a_clear_error(bert: Backbone, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="holds no checkpoint"):
        _trainer(bert, tmp_path).fit(resume=True)


def test_resume_with_other_settings_is_refused(bert: Backbone, tmp_path: Path) -> None:
    _trainer(bert, tmp_path, max_steps=6).fit()
    with pytest.raises(TrainingError, match="other settings"):
        _trainer(bert, tmp_path, max_steps=6, lr=0.01).fit(resume=True)


def test_early_stopping_stops(bert: Backbone) -> None:
    result = _trainer(bert, None, patience=1, max_steps=200, eval_every=1, lr=1e-6, head_lr=1e-6).fit()
    assert result.stopped_early and result.steps < 200


def test_nan_loss_stops_with_a_clear_error(bert: Backbone) -> None:
    class NaN(Trainer):
        def training_step(self, batch, step):  # type: ignore[no-untyped-def]
            return torch.tensor(float("nan"))

    with pytest.raises(TrainingError, match="lower --lr"):
        _trainer(bert, None, NaN).fit()


def test_best_checkpoint_is_restored_at_the_end(bert: Backbone, tmp_path: Path) -> None:
    trainer = _trainer(bert, tmp_path)
    trainer.fit()
    saved = PromptModel.from_pretrained(tmp_path / "best", backbone=bert).trainable_state()
    now = trainer.model.trainable_state()
    assert all(torch.equal(saved[k], now[k]) for k in saved)


def test_changed_settings_names_each_difference() -> None:
    from promptlearning.training.trainer import changed_settings

    saved = {"train": {"lr": 0.1, "max_steps": 10}, "method": "a", "n_train": 4}
    now = {"train": {"lr": 0.2, "max_steps": 10}, "method": "b", "n_train": 4}
    assert changed_settings(saved, now) == ["method", "train.lr"]
    assert changed_settings(saved, saved) == []


def test_eval_at_start_lets_the_starting_state_win(bert: Backbone, tmp_path: Path) -> None:
    """With --eval-at-start a run whose training never beats its start on dev returns the start."""
    from dataclasses import replace

    from promptlearning.training.metrics import predict_encoded

    trainer = _trainer(bert, tmp_path, eval_at_start=True, max_steps=6, eval_every=3)
    start = {k: v.detach().clone() for k, v in trainer.model.trainable_state().items()}
    # relabel dev with the untrained model's own answers: the start scores 1.0, which training cannot beat
    trainer.dev_items = [replace(x, label=p) for x, p in zip(trainer.dev_items, predict_encoded(
        trainer.model, trainer.dev_items), strict=True)]
    result = trainer.fit()
    assert result.history[0]["step"] == 0 and result.best_step == 0 and result.best_dev == 1.0
    end = trainer.model.trainable_state()
    assert all(torch.equal(end[k], v) for k, v in start.items())
    plain = _trainer(bert, None, max_steps=6, eval_every=3).fit()
    assert plain.history[0]["step"] == 3  # off by default: the first evaluation follows the first steps
