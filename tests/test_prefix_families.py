"""Prefix tuning and P-tuning v2 on every backbone family the README lists, on tiny random configs.

Each (family, method) either trains (forward and backward, and the prompt really changes the
output: two initialisations give different logits) or is refused in one line naming what to use
instead. DistilBERT's attention has no key/value cache, so key/value prefixes are refused there.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate, encode
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.model import PromptModel
from promptlearning.tiny import tiny_tokenizer

ENCODERS = ("bert", "roberta", "distilbert", "electra")
DECODERS = ("llama", "mistral", "qwen2", "gpt2")
#: (family, method) pairs that are refused, with a word the refusal must contain
REFUSED = {("distilbert", "prefix_tuning"): "p_tuning_v2"}


def _tiny(model_type: str) -> Backbone:
    from transformers import AutoConfig, AutoModel

    tokenizer = tiny_tokenizer("bert" if model_type in ENCODERS else "llama")
    size: dict[str, Any] = {"vocab_size": len(tokenizer)}
    if model_type == "distilbert":
        size.update(dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=128)
    elif model_type == "gpt2":
        size.update(n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=None, eos_token_id=None)
    else:
        size.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=128)
        if model_type in DECODERS:
            size.update(num_key_value_heads=2)  # grouped-query attention: prefixes have kv-head shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModel.from_config(AutoConfig.for_model(model_type, **size)).eval()
    return Backbone(f"tiny-{model_type}", model, tokenizer)


@pytest.fixture(scope="module", params=ENCODERS + DECODERS)
def family(request: pytest.FixtureRequest) -> Backbone:
    return _tiny(request.param)


@pytest.mark.parametrize("method,options", [("prefix_tuning", {"num_tokens": 3}),
                                            ("prefix_tuning", {"num_tokens": 3, "reparam": False}),
                                            ("p_tuning_v2", {"num_tokens": 3})])
def test_deep_prompts_work_or_are_refused_on_every_family(family: Backbone, method: str,
                                                          options: dict[str, Any]) -> None:
    texts = [Example("good movie", 0), Example("bad film and boring plot", 1)]
    batch = collate(encode(family.tokenizer, texts, 32), int(family.tokenizer.pad_token_id or 0),
                    family.info.is_decoder)

    def logits(seed: int) -> torch.Tensor:
        model = PromptModel.build(family, method, ["a", "b"], method_options={**options, "init_seed": seed},
                                  max_length=32)
        out = model(batch)
        assert out.loss is not None
        out.loss.backward()
        assert all(p.grad is not None for p in model.method.parameters() if p.requires_grad)
        return out.logits.detach()

    refused = REFUSED.get((family.info.model_type, method))
    if refused:
        with pytest.raises(ConfigError, match=refused) as info:
            logits(0)
        assert "\n" not in str(info.value)
        return
    first, second = logits(0), logits(1)
    assert first.shape == (2, 2) and torch.isfinite(first).all()
    assert not torch.allclose(first, second)  # the prompt reaches the output: not silently ignored


def test_key_value_prefixes_use_the_cache_argument_the_installed_transformers_wants(family: Backbone) -> None:
    """transformers renamed ``past_key_values`` to ``cache`` and warns on the old name: no prefix forward (nor the
    generation cache's start and continuation, on decoders) may raise that FutureWarning."""
    import warnings

    from promptlearning import injection

    if (family.info.model_type, "prefix_tuning") in REFUSED:
        pytest.skip("no key/value cache in this family")
    texts = [Example("good movie", 0), Example("bad film and boring plot", 1)]
    batch = collate(encode(family.tokenizer, texts, 32), int(family.tokenizer.pad_token_id or 0),
                    family.info.is_decoder)
    model = PromptModel.build(family, "prefix_tuning", ["a", "b"], method_options={"num_tokens": 3}, max_length=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model(batch)
        if family.info.is_decoder:
            _, mask, cache = injection.start_cached(family, model.method, batch)
            injection.continue_cached(family, model.method, cache, batch.input_ids[:, :1],
                                      torch.cat([mask, mask.new_ones(2, 1)], dim=1))
