"""Evaluation runs examples shortest first; predictions must still come back in input order."""

from __future__ import annotations

import random

import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import batches, encode
from promptlearning.data.examples import Example
from promptlearning.model import PromptModel
from promptlearning.training.metrics import predict_encoded

from .conftest import NEGATIVE, POSITIVE


def _mixed_lengths(n: int = 40) -> list[Example]:
    rng = random.Random(3)
    words = POSITIVE + NEGATIVE
    return [Example(" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))), rng.randint(0, 1)) for _ in range(n)]


def test_sorted_prediction_matches_one_by_one(any_backbone: Backbone) -> None:
    torch.manual_seed(0)
    model = PromptModel.build(any_backbone, "p_tuning_v2", ["neg", "pos"], method_options={"num_tokens": 3})
    items = encode(any_backbone.tokenizer, _mixed_lengths(), max_length=32)
    assert len({len(x.input_ids) for x in items}) > 3  # lengths really differ, so sorting reorders
    model.eval()
    singles = batches(items, 1, model.pad_id, model.left_pad)
    with torch.no_grad():
        logits = torch.cat([model(b).logits for b in singles])
        model.head.linear.bias -= logits.mean(0)  # centre the untrained head so both classes occur
        one_by_one = [int(model(b).logits.argmax(-1)) for b in singles]
    assert len(set(one_by_one)) == 2  # both classes occur, so a lost order would show
    assert predict_encoded(model, items, batch_size=8) == one_by_one
