"""One contract, run over every registered method on both tiny backbones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate, encode
from promptlearning.data.examples import Example
from promptlearning.methods import list_methods
from promptlearning.model import PromptModel

OPTIONS: dict[str, dict[str, object]] = {"prompt_tuning": {"num_tokens": 3}, "p_tuning_v2": {"num_tokens": 3},
                                         "hyperprompt": {"task_repr": "learned", "num_tokens": 3}}
METHOD_NAMES = [cls.name for cls in list_methods() if "text" in cls.input_kinds]  # images: test_image_methods


def _batch(backbone: Backbone, examples: list[Example]):  # type: ignore[no-untyped-def]
    return collate(encode(backbone.tokenizer, examples, 32), int(backbone.tokenizer.pad_token_id),
                   backbone.info.is_decoder)


def _model(backbone: Backbone, name: str) -> PromptModel:
    return PromptModel.build(backbone, name, ["negative", "positive"], method_options=OPTIONS.get(name))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_forward_backward_trains_only_its_own_parameters(name: str, any_backbone: Backbone,
                                                         toy: list[Example]) -> None:
    import copy

    backbone = copy.deepcopy(any_backbone)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = _model(backbone, name)
    out = model(_batch(backbone, toy[:4] + toy[-4:]))
    assert out.logits.shape == (8, 2)
    assert out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable, "every method trains something"
    for p in model.parameters():
        if id(p) not in trainable:
            assert p.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trainable_parameters())
    if not model.method.trains_backbone:
        assert all(not p.requires_grad for p in backbone.parameters())
        assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_save_load_round_trip_is_bit_exact(name: str, any_backbone: Backbone, toy: list[Example],
                                           tmp_path: Path) -> None:
    import copy

    backbone = copy.deepcopy(any_backbone)
    model = _model(backbone, name)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)  # move away from the initialisation
    model.save_pretrained(tmp_path / "adapter")
    loaded = PromptModel.from_pretrained(tmp_path / "adapter", backbone=copy.deepcopy(any_backbone)
                                         if model.method.trains_backbone else backbone)
    a, b = model.trainable_state(), loaded.trainable_state()
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    model.eval()
    loaded.eval()
    batch = _batch(backbone, toy[:3])
    assert torch.equal(model(batch).logits, loaded(batch).logits)
    assert loaded.labels == ["negative", "positive"]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_rows_are_independent_of_batch_mates(name: str, bert: Backbone, toy: list[Example]) -> None:
    model = _model(bert, name).eval()
    alone = model(_batch(bert, toy[:1])).logits
    together = model(_batch(bert, toy[:1] + toy[-3:])).logits[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_every_method_is_listed_with_a_summary_and_documented_options() -> None:
    import dataclasses
    import json

    assert {"prompt_tuning", "p_tuning_v2", "linear_probe", "finetune"} <= set(METHOD_NAMES)
    for cls in list_methods():
        assert cls.summary, f"{cls.name} needs a one-line summary for `promptlearning methods`"
        fields = [f.name for f in dataclasses.fields(cls.config_class)]
        help_text = cls.config_class.help()
        assert list(help_text) == fields
        assert all(help_text[f].strip() for f in fields), f"{cls.name}: every option needs help text for the CLI"
        assert [line.split("=")[0].split()[-1] for line in cls.config_class.option_lines()] == fields
        defaults = cls.config_class()
        assert cls.config_class.from_dict(json.loads(json.dumps(defaults.to_dict()))) == defaults  # JSON round trip
