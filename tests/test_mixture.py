"""Mixed-adapter batches: each row gets exactly what its adapter gives it alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import batches
from promptlearning.errors import ConfigError
from promptlearning.mixture import AdapterMixture
from promptlearning.model import PromptModel

from .conftest import toy_examples


def _adapters(backbone: Backbone) -> list[PromptModel]:
    specs = [("prompt_tuning", {"num_tokens": 3, "init_seed": 1}, ["neg", "pos"]),
             ("p_tuning_v2", {"num_tokens": 3, "layers": [1]}, ["a", "b", "c"]),
             ("generator", {"num_tokens": 3, "layers": [0]}, ["x", "y"]),
             ("prompt_tuning", {"num_tokens": 3, "init_seed": 2}, ["neg", "pos"])]
    models = []
    for method, options, labels in specs:
        model = PromptModel.build(backbone, method, labels, method_options=options)
        with torch.no_grad():
            for p in model.trainable_parameters():
                p.add_(torch.randn_like(p) * 0.1)
        models.append(model.eval())
    return models


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_each_row_equals_its_adapter_alone(kind: str, bert: Backbone, llama: Backbone) -> None:
    backbone = bert if kind == "bert" else llama
    models = _adapters(backbone)
    mixture = AdapterMixture(models).eval()
    examples = toy_examples(4)
    assignment = [0, 1, 2, 3, 1, 0, 2, 3]
    items = [models[0].encode([e], task_id=a)[0] for e, a in zip(examples, assignment, strict=True)]
    batch = batches(items, 8, models[0].pad_id, backbone.info.is_decoder)[0]
    with torch.no_grad():
        mixed = mixture(batch)
        for row, adapter in enumerate(assignment):
            alone = models[adapter](batches([items[row]], 1, models[0].pad_id, backbone.info.is_decoder)[0]).logits
            width = alone.shape[1]
            assert torch.allclose(mixed[row, :width], alone[0], atol=1e-5)
            assert torch.isinf(mixed[row, width:]).all()


def test_mixture_predicts_labels_of_each_adapter(bert: Backbone, tmp_path: Path) -> None:
    models = _adapters(bert)
    for i, m in enumerate(models):
        m.save_pretrained(tmp_path / str(i))
    mixture = AdapterMixture.from_pretrained([tmp_path / str(i) for i in range(4)], backbone=bert)
    texts = ["great movie", "awful film", "fun", "bad"]
    preds = mixture.predict(texts, [0, 1, 2, 3])
    assert preds[1] in ["a", "b", "c"] and preds[2] in ["x", "y"]
    assert preds == [models[a].predict([t])[0] for t, a in zip(texts, [0, 1, 2, 3], strict=True)]


def test_mixture_refuses_mismatched_geometry(bert: Backbone) -> None:
    a = PromptModel.build(bert, "prompt_tuning", ["n", "p"], method_options={"num_tokens": 3})
    b = PromptModel.build(bert, "prompt_tuning", ["n", "p"], method_options={"num_tokens": 4})
    with pytest.raises(ConfigError, match="same prompt length"):
        AdapterMixture([a, b])
    with pytest.raises(ConfigError, match="out of range"):
        AdapterMixture([a]).predict(["x"], [3])
