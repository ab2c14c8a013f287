"""Bad training values are refused up front; a diverging run stops with a clear message and keeps its last good adapter."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import Batch, encode
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig, Trainer

from .conftest import toy_examples


@pytest.mark.parametrize(("field", "value"), [
    ("lr", math.nan), ("lr", math.inf), ("lr", -1.0), ("head_lr", -1.0), ("head_lr", math.nan),
    ("weight_decay", -1.0), ("weight_decay", math.inf), ("max_grad_norm", math.nan), ("max_grad_norm", -0.5),
])
def test_non_finite_or_negative_training_values_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def _trainer(backbone: Backbone, out: Path, cls: type[Trainer]) -> Trainer:
    model = PromptModel.build(backbone, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 3})
    cfg = TrainConfig(max_steps=40, eval_every=5, checkpoint_every=5, quiet=True, lr=0.01, train_past_perfect_dev=True)
    return cls(model, cfg, encode(backbone.tokenizer, toy_examples(8, seed=1), 32),
               encode(backbone.tokenizer, toy_examples(4, seed=2), 32), out)


class _Exploding(Trainer):
    """The real step, but the reported loss grows 50-fold after step 15 (what a too-high lr does)."""

    def training_step(self, batch: Batch, step: int) -> torch.Tensor:
        loss = super().training_step(batch, step)
        return loss * 50 + 10 if step >= 15 else loss


def test_an_exploding_loss_stops_the_run_and_keeps_the_last_good_adapter(bert: Backbone, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"loss exploded.*lower --lr.*last good adapter is kept"):
        _trainer(bert, tmp_path, _Exploding).fit()
    assert (tmp_path / "best" / "adapter_config.json").is_file()
    assert PromptModel.from_pretrained(tmp_path / "best", bert).num_trainable() > 0


class _Poisoned(Trainer):
    """Weights turn infinite in the step just before an evaluation (what lr=inf did)."""

    def training_step(self, batch: Batch, step: int) -> torch.Tensor:
        loss = super().training_step(batch, step)
        if step == 9:
            with torch.no_grad():
                next(p for p in self.model.method.parameters() if p.requires_grad).fill_(math.inf)
        return loss


def test_non_finite_weights_are_never_kept_as_best(bert: Backbone, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="non-finite"):
        _trainer(bert, tmp_path, _Poisoned).fit()
    best = PromptModel.from_pretrained(tmp_path / "best", bert)
    assert all(torch.isfinite(p).all() for p in best.method.parameters())
