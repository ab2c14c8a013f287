"""`predict` (raw texts) and `evaluate` (tokenised rows) give the same predictions for every method and head."""

from __future__ import annotations

import copy

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.examples import Example
from promptlearning.heads import HeadConfig
from promptlearning.methods import list_methods
from promptlearning.model import PromptModel
from promptlearning.training.metrics import predict_encoded

OPTIONS: dict[str, dict[str, object]] = {"prompt_tuning": {"num_tokens": 3}, "p_tuning_v2": {"num_tokens": 3},
                                         "hyperprompt": {"task_repr": "learned", "num_tokens": 3}}


def _perturb(model: PromptModel) -> None:
    """Random trainable weights, so a dropped input (a template slot, a task id) changes the answer."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and p.is_floating_point():
                p.add_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("name", [cls.name for cls in list_methods() if "text" in cls.input_kinds])
def test_predict_equals_evaluate(name: str, any_backbone: Backbone, toy: list[Example]) -> None:
    backbone = copy.deepcopy(any_backbone)  # fine-tuning's weights are the backbone's: never perturb the shared one
    head = HeadConfig(kind="verbalizer") if backbone.info.is_decoder else None
    model = PromptModel.build(backbone, name, ["negative", "positive"], method_options=OPTIONS.get(name),
                              head=head)
    _perturb(model)
    texts = [e.text_a for e in toy]
    from_texts = model.predict_proba(texts).argmax(-1).tolist()
    from_rows = predict_encoded(model, model.encode([Example(t, 0) for t in texts]))
    assert from_texts == from_rows
