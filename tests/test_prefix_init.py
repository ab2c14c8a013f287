"""How prefix tuning's prefixes start: at random (init=random, the default, and what every config saved
before the option meant) or from the backbone's own keys and values of real tokens (init=vocab or text).

The real-token start is checked where it is exact: in a causal LM whose input is numbered after the
prefix, the input's hidden states under the initial prefix equal those of the real tokens followed by
the input, read in one pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate, encode
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.injection import run_backbone
from promptlearning.methods.prompt_init import token_ids_for_init
from promptlearning.model import PromptModel


@pytest.mark.parametrize("reparam", [True, False])
def test_a_real_token_prefix_reads_like_those_tokens_before_the_input(llama: Backbone, reparam: bool) -> None:
    options = {"num_tokens": 3, "reparam": reparam, "init": "text", "init_text": "the film was",
               "peft_positions": True}
    model = PromptModel.build(llama, "prefix_tuning", ["a", "b"], method_options=options).eval()
    texts = ["good movie", "bad film"]  # equal token counts: no padding
    batch = collate(encode(llama.tokenizer, [Example(t, 0) for t in texts], 32), 0, True)
    with torch.no_grad():
        hidden, _, _ = run_backbone(llama, model.method, batch)  # (B, L, H)
        ids = token_ids_for_init("text", 3, 0, llama.tokenizer, seed=0, text="the film was")
        joined = torch.cat([ids.expand(len(texts), -1), batch.input_ids], dim=1)
        whole = llama.model(input_ids=joined, attention_mask=torch.ones_like(joined)).last_hidden_state
    assert torch.allclose(hidden, whole[:, 3:], atol=1e-5)


def test_vocab_and_random_starts_differ_and_seeds_matter(bert: Backbone) -> None:
    def prefix(**options: object) -> torch.Tensor:
        model = PromptModel.build(bert, "prefix_tuning", ["a", "b"], method_options={"num_tokens": 4, **options})
        return model.method.flat_prefix().detach()

    assert torch.equal(prefix(), prefix(init="random"))  # random is the default
    assert not torch.allclose(prefix(init="vocab"), prefix(init="random"))
    assert not torch.allclose(prefix(init_seed=0), prefix(init_seed=1))
    assert torch.equal(prefix(init="vocab", reparam=True), prefix(init="vocab", reparam=False))  # no change yet


def test_bad_init_options_are_refused_in_one_line(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="unknown init 'words'; choose one of"):
        PromptModel.build(bert, "prefix_tuning", ["a", "b"], method_options={"init": "words"})
    with pytest.raises(ConfigError, match="init=text needs init_text"):
        PromptModel.build(bert, "prefix_tuning", ["a", "b"], method_options={"init": "text"})


def test_an_adapter_saved_before_init_existed_loads_as_random(bert: Backbone, tmp_path: Path) -> None:
    model = PromptModel.build(bert, "prefix_tuning", ["a", "b"], method_options={"num_tokens": 2})
    folder = model.save_pretrained(tmp_path / "old")
    config_file = folder / "adapter_config.json"
    config = json.loads(config_file.read_text())
    del config["method_config"]["init"]  # as versions before the option wrote it
    config_file.write_text(json.dumps(config))
    again = PromptModel.from_pretrained(folder, backbone=bert)
    assert again.method.config.init == "random"
    assert torch.equal(again.method.flat_prefix(), model.method.flat_prefix())
