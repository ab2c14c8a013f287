"""Default model selection stops a run once dev accuracy is 1.0, keeping exactly the model a full run keeps."""

from __future__ import annotations

import dataclasses

import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import encode
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig, Trainer, TrainResult

from .conftest import toy_examples


def _fit(backbone: Backbone, **overrides: object) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    model = PromptModel.build(backbone, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    cfg = TrainConfig(**{"max_steps": 40, "eval_every": 4, "quiet": True, "lr": 0.05, "head_lr": 0.05,
                         **overrides})  # type: ignore[arg-type]
    train = encode(backbone.tokenizer, toy_examples(8, seed=1), 32)
    dev = encode(backbone.tokenizer, toy_examples(2, seed=2), 32)
    result = Trainer(model, cfg, train, dev, None).fit()
    return result, model.trainable_state()


def test_a_perfect_dev_score_ends_the_run_with_the_model_a_full_run_keeps(bert: Backbone) -> None:
    full, full_state = _fit(bert, train_past_perfect_dev=True)
    assert full.best_dev == 1.0 and full.steps == 40  # the toy task is learnt well before the end
    stopped, stopped_state = _fit(bert)
    assert stopped.stopped_early and stopped.steps == full.best_step < 40
    assert stopped.best_step == full.best_step and stopped.best_dev == full.best_dev
    assert stopped_state.keys() == full_state.keys()
    assert all(torch.equal(stopped_state[k], full_state[k]) for k in full_state)


def test_the_default_leaves_stored_job_keys_unchanged() -> None:
    """TrainConfig.to_dict() is part of every bench job key and --resume fingerprint: the new setting appears
    there only when turned on, so every config written before it hashes as before."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(TrainConfig().to_dict()) == names - {"train_past_perfect_dev", "report_to"}
    assert TrainConfig(train_past_perfect_dev=True).to_dict()["train_past_perfect_dev"] is True
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
