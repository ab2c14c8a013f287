"""Method-specific behaviour beyond the shared contract: prefix folding, generators."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate, encode
from promptlearning.errors import ConfigError
from promptlearning.methods import build_method
from promptlearning.model import PromptModel

from .conftest import toy_examples


def _batch(backbone: Backbone, n: int = 4):  # type: ignore[no-untyped-def]
    return collate(encode(backbone.tokenizer, toy_examples(4)[:n], 32), int(backbone.tokenizer.pad_token_id),
                   backbone.info.is_decoder)


def test_prefix_fold_keeps_outputs_and_saves_plain_prefix(any_backbone: Backbone, tmp_path: Path) -> None:
    model = PromptModel.build(any_backbone, "prefix_tuning", ["a", "b"], method_options={"num_tokens": 3}).eval()
    batch = _batch(any_backbone)
    before = model(batch).logits
    n_before = model.num_trainable()
    model.method.fold()  # type: ignore[operator]
    after = model(batch).logits
    assert torch.allclose(before, after, atol=1e-6)
    assert model.num_trainable() < n_before
    model.save_pretrained(tmp_path)
    loaded = PromptModel.from_pretrained(tmp_path, backbone=any_backbone).eval()
    assert loaded.method.config.reparam is False  # type: ignore[attr-defined]
    assert torch.allclose(loaded(batch).logits, before, atol=1e-6)


def test_prefix_changes_the_output(bert: Backbone) -> None:
    batch = _batch(bert)
    plain = PromptModel.build(bert, "linear_probe", ["a", "b"]).eval()
    prefixed = PromptModel.build(bert, "prefix_tuning", ["a", "b"], method_options={"reparam": False}).eval()
    assert not torch.allclose(plain(batch).logits, prefixed(batch).logits)


def test_generator_makes_a_prompt_per_input(bert: Backbone) -> None:
    method = build_method("generator", bert, {"num_tokens": 2, "layers": [0, 1]})
    seen: list[torch.Tensor] = []
    original = method.layer_prompt

    def spy(layer, hidden, ctx):  # type: ignore[no-untyped-def]
        out = original(layer, hidden, ctx)
        seen.append(out)
        return out

    method.layer_prompt = spy  # type: ignore[method-assign]
    model = PromptModel(bert, method, PromptModel.build(bert, "linear_probe", ["a", "b"]).head, ["a", "b"])
    model(_batch(bert, 3))
    assert len(seen) == 2 and seen[0].shape == (3, 2, 32)
    assert not torch.allclose(seen[0][0], seen[0][1])  # different inputs, different prompts


def test_generator_sharing_the_down_projection_saves_parameters(bert: Backbone) -> None:
    own = build_method("generator", bert, {"layers": [0, 1], "bottleneck": 8})
    shared = build_method("generator", bert, {"layers": [0, 1], "bottleneck": 8, "share_down": True})
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(own) - count(shared) == 32 * 8 + 8


def test_generator_defaults_to_the_middle_layer(bert: Backbone) -> None:
    assert build_method("generator", bert).prompt_layers == [1]
    with pytest.raises(ConfigError, match="activation"):
        build_method("generator", bert, {"activation": "swish"})
