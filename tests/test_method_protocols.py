"""The method protocols: which methods have them, that they behave, and the error when one is missing."""

from __future__ import annotations

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate, encode
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.methods import build_method
from promptlearning.methods.protocols import (
    LayerGates,
    SoftPrompt,
    layer_gates_of,
    methods_with,
    soft_prompt_of,
)
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig
from promptlearning.training.gate_search import BilevelTrainer, SearchConfig
from promptlearning.training.layer_selection import search_layers

SOFT = methods_with(SoftPrompt)


def test_the_methods_that_have_each_protocol() -> None:
    assert {"prompt_tuning", "p_tuning_v2"} <= set(methods_with(SoftPrompt))
    assert methods_with(LayerGates) == ["spt"]
    assert not set(methods_with(SoftPrompt)) & {"linear_probe", "finetune", "fixed_prompt", "prefix_tuning"}


@pytest.mark.parametrize("name", SOFT)
def test_a_soft_prompt_reads_and_sets_what_the_model_uses(name: str, bert: Backbone, toy: list[Example]) -> None:
    model = PromptModel.build(bert, name, ["negative", "positive"], method_options={"num_tokens": 3}).eval()
    prompt = soft_prompt_of(model.method, "this test")
    batch = collate(encode(bert.tokenizer, toy[:2] + toy[-2:], 32), int(bert.tokenizer.pad_token_id), False)
    before, logits = prompt.soft_prompt(), model(batch).logits
    assert before.shape[-2] == 3 and not before.requires_grad
    before.add_(1.0)  # a copy: editing it leaves the model alone
    assert torch.equal(model(batch).logits, logits)
    new = torch.randn(before.shape, generator=torch.Generator().manual_seed(0))
    prompt.set_soft_prompt(new)
    assert torch.equal(prompt.soft_prompt(), new)
    assert not torch.allclose(model(batch).logits, logits)
    assert all(p.requires_grad for p in model.method.parameters())  # still trainable after the write
    with pytest.raises(ConfigError, match="num_tokens=3"):
        prompt.set_soft_prompt(torch.zeros(*before.shape[:-2], 4, before.shape[-1]))


def test_gates_answer_for_every_candidate_and_discretise_temporarily(bert: Backbone) -> None:
    method = build_method("spt", bert, {"num_tokens": 2})
    gates = layer_gates_of(method, "this test")
    assert gates.candidate_layers == [0, 1]
    assert gates.probabilities().shape == (2,)
    assert gates.architecture_parameters() == [method.gates]
    with gates.discretised([1]):
        assert method.prompt_layers == [1]
    assert method.prompt_layers == [0, 1]


@pytest.mark.parametrize("name", ["prompt_tuning", "linear_probe"])
def test_the_gate_search_refuses_a_method_without_gates(name: str, bert: Backbone, toy: list[Example]) -> None:
    model = PromptModel.build(bert, name, ["negative", "positive"])
    items = encode(bert.tokenizer, toy, 32)
    with pytest.raises(ConfigError, match=f"needs a method with layer gates, and method {name} has none; "
                                          "use --method spt$"):
        BilevelTrainer(model, TrainConfig(max_steps=1, quiet=True), SearchConfig(), items, items, [])
    with pytest.raises(ConfigError, match="use --method spt$"):
        search_layers(model, TrainConfig(max_steps=1, quiet=True), SearchConfig(budget=1), items, items, None)


def test_a_method_without_a_soft_prompt_is_named_in_the_error(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match=r"continual learning needs a method with a soft prompt to read and set, "
                                          r"and method generator has none; use --method .*prompt_tuning"):
        soft_prompt_of(build_method("generator", bert, {}), "continual learning")
