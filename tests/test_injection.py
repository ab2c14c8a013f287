"""The injector: prompt positions, hooks, masks, and the identity case."""

from __future__ import annotations

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate, encode
from promptlearning.errors import ConfigError
from promptlearning.injection import run_backbone
from promptlearning.methods import build_method
from promptlearning.model import PromptModel

from .conftest import toy_examples


def _batch(backbone: Backbone, n: int = 4):  # type: ignore[no-untyped-def]
    return collate(encode(backbone.tokenizer, toy_examples(4)[:n], 32), int(backbone.tokenizer.pad_token_id),
                   backbone.info.is_decoder)


def test_method_without_prompt_equals_bare_backbone(any_backbone: Backbone) -> None:
    batch = _batch(any_backbone)
    method = build_method("linear_probe", any_backbone)
    hidden, mask, _ = run_backbone(any_backbone, method, batch)
    bare = any_backbone.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    keep = batch.attention_mask.bool()
    assert torch.allclose(hidden[keep], bare[keep], atol=1e-5)
    assert torch.equal(mask, batch.attention_mask)


def test_prompt_positions_are_prepended_and_attended(any_backbone: Backbone) -> None:
    batch = _batch(any_backbone)
    method = build_method("prompt_tuning", any_backbone, {"num_tokens": 5})
    hidden, mask, ctx = run_backbone(any_backbone, method, batch)
    assert hidden.shape[1] == batch.input_ids.shape[1] + 5
    assert mask[:, :5].eq(1).all() and ctx.num_prompt_positions == 5


def test_input_prompt_equals_feeding_prompt_embeddings(bert: Backbone) -> None:
    """Prompt tuning is exactly the backbone run on [prompt vectors; token embeddings]."""
    batch = _batch(bert, 2)
    method = build_method("prompt_tuning", bert, {"num_tokens": 3})
    hidden, mask, _ = run_backbone(bert, method, batch)
    embeds = torch.cat([method.prompt.unsqueeze(0).expand(2, -1, -1), bert.embed(batch.input_ids)], 1)
    ref = bert.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    keep = mask.bool()  # padded positions may differ: they get other position ids and are never read
    assert torch.allclose(hidden[keep], ref[keep], atol=1e-5)


def test_deep_prompt_replaces_positions_only_at_chosen_layers(bert: Backbone) -> None:
    batch = _batch(bert, 2)
    method = build_method("p_tuning_v2", bert, {"num_tokens": 2, "layers": [1]})
    seen: dict[int, torch.Tensor] = {}
    handles = [layer.register_forward_pre_hook(
        lambda m, a, k, i=i: seen.__setitem__(i, (a[0] if a else k["hidden_states"]).detach().clone()),
        with_kwargs=True) for i, layer in enumerate(bert.layers)]
    try:
        run_backbone(bert, method, batch)
    finally:
        for h in handles:
            h.remove()
    # hooks registered before ours see the incoming state; layer 0 gets zeros, layer 1 gets the flow from below
    assert seen[0][:, :2].abs().sum() > 0  # embeddings add position/type vectors to the zero placeholder
    assert method.prompt_layers == [1]
    # hooks are removed after the forward
    assert all(len(layer._forward_pre_hooks) == 0 for layer in bert.layers)


def test_gradients_do_not_flow_below_lowest_prompt_layer(bert: Backbone) -> None:
    model = PromptModel.build(bert, "p_tuning_v2", ["a", "b"], method_options={"num_tokens": 2, "layers": [1]})
    grads: list[bool] = []
    handle = bert.layers[0].register_forward_hook(lambda m, a, o: grads.append(o.requires_grad))
    try:
        model(_batch(bert)).loss.backward()  # type: ignore[union-attr]
    finally:
        handle.remove()
    assert grads == [False]
    assert model.method.prompts.grad is not None


def test_too_long_prompt_is_a_clear_error(bert: Backbone) -> None:
    method = build_method("prompt_tuning", bert, {"num_tokens": 125})
    with pytest.raises(ConfigError, match="exceeds the 128 positions"):
        run_backbone(bert, method, _batch(bert))
    with pytest.raises(ConfigError, match="exceeds"):
        build_method("prompt_tuning", bert, {"num_tokens": 500})


def test_unknown_method_and_option_are_clear_errors(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="choose one of"):
        build_method("prefix_tunning", bert)
    with pytest.raises(ConfigError, match="unknown option"):
        build_method("prompt_tuning", bert, {"num_tokenz": 3})
    with pytest.raises(ConfigError, match="out of range"):
        build_method("p_tuning_v2", bert, {"layers": [7]})
