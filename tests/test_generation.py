"""Generation from prompted causal LMs equals the backbone run on the explicit prompt."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from promptlearning.backbones import Backbone
from promptlearning.errors import ConfigError
from promptlearning.generation import generate
from promptlearning.model import PromptModel


def _greedy(backbone: Backbone, embeds: torch.Tensor, steps: int, prefix=None) -> list[int]:  # type: ignore[no-untyped-def]
    """Reference: the bare backbone on [prompt vectors; token embeddings], greedy, no padding."""
    assert backbone.lm_head is not None
    out: list[int] = []
    for _ in range(steps):
        kwargs = {}
        if prefix is not None:
            kwargs = {backbone.cache_keyword: DynamicCache(ddp_cache_data=prefix), "use_cache": True,
                      "attention_mask": torch.ones(1, prefix[0][0].shape[2] + embeds.shape[1], dtype=torch.long),
                      "position_ids": torch.arange(embeds.shape[1]).unsqueeze(0)}
        hidden = backbone.model(inputs_embeds=embeds, **kwargs).last_hidden_state
        token = int(backbone.lm_head(hidden[:, -1]).argmax(-1))
        out.append(token)
        embeds = torch.cat([embeds, backbone.embed(torch.tensor([[token]]))], dim=1)
    return out


def _ids(backbone: Backbone, text: str) -> torch.Tensor:
    return torch.tensor([backbone.tokenizer(text)["input_ids"]])


def test_prompt_tuning_generation_equals_explicit_prompt(llama: Backbone) -> None:
    model = PromptModel.build(llama, "prompt_tuning", ["a", "b"], method_options={"num_tokens": 3}).eval()
    texts = ["great movie", "i really hate this boring film"]
    got = generate(model, texts, max_new_tokens=4, stop_at_eos=False)
    for text, tokens in zip(texts, got, strict=True):
        embeds = torch.cat([model.method.prompt.unsqueeze(0), llama.embed(_ids(llama, text))], dim=1)
        assert tokens == _greedy(llama, embeds, 4)


def test_prefix_tuning_generation_equals_explicit_prefix(llama: Backbone) -> None:
    model = PromptModel.build(llama, "prefix_tuning", ["a", "b"], method_options={"num_tokens": 2}).eval()
    text = "fun and funny"
    got = generate(model, [text, "bad"], max_new_tokens=3, stop_at_eos=False)[0]
    from promptlearning.methods.base import PromptContext

    prefix = model.method.kv_prefix(PromptContext(1, torch.device("cpu"), torch.float32))
    with torch.no_grad():
        assert got == _greedy(llama, llama.embed(_ids(llama, text)), 3, [(k, v) for k, v in prefix])


def test_sampling_is_seeded(llama: Backbone) -> None:
    model = PromptModel.build(llama, "generator", ["a", "b"]).eval()
    a = generate(model, ["good"], max_new_tokens=5, do_sample=True, seed=3, top_k=20)
    b = generate(model, ["good"], max_new_tokens=5, do_sample=True, seed=3, top_k=20)
    assert a == b and len(a[0]) <= 5
    assert isinstance(model.generate(["good"], max_new_tokens=2)[0], str)


def test_generation_of_an_encoder_is_a_clear_error(bert: Backbone) -> None:
    model = PromptModel.build(bert, "prompt_tuning", ["a", "b"], method_options={"num_tokens": 2})
    with pytest.raises(ConfigError, match="is an encoder"):
        model.generate(["hello"])


@pytest.mark.parametrize("kwargs", [{"top_k": -5, "do_sample": True}, {"temperature": float("nan")},
                                    {"temperature": 0.0}, {"max_new_tokens": 0}])
def test_bad_sampling_values_are_one_line_errors(llama: Backbone, kwargs: dict[str, object]) -> None:
    model = PromptModel.build(llama, "prompt_tuning", ["a", "b"], method_options={"num_tokens": 2})
    with pytest.raises(ConfigError):
        generate(model, ["hello there"], **kwargs)  # type: ignore[arg-type]


def test_an_empty_text_is_refused(llama: Backbone) -> None:
    model = PromptModel.build(llama, "prompt_tuning", ["a", "b"], method_options={"num_tokens": 2})
    with pytest.raises(ConfigError, match="non-empty"):
        generate(model, ["  "])
