"""The packaged SmolLM2-135M causal LM: conversion cache, verbaliser, generation (marked real)."""

from __future__ import annotations

import pytest
import torch

from promptlearning import PromptModel, load_backbone
from promptlearning.artifacts import cache_dir
from promptlearning.backbones import Backbone
from promptlearning.heads.base import HeadConfig

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smol() -> Backbone:
    return load_backbone("smollm2-135m")


def test_smollm2_shape_and_cache(smol: Backbone) -> None:
    info = smol.info
    assert (info.model_type, info.num_layers, info.hidden_size, info.vocab_size) == ("llama", 30, 576, 49152)
    assert smol.lm_head is not None and info.is_decoder
    assert (cache_dir() / "converted" / "smollm2-135m" / "model.safetensors").is_file()


def test_fixed_prompt_through_the_verbaliser(smol: Backbone) -> None:
    model = PromptModel.build(smol, "fixed_prompt", ["negative", "positive"], head=HeadConfig(kind="verbalizer"),
                              task="mr", max_length=64)
    assert model.num_trainable() == 0
    probs = model.predict_proba(["A warm, funny and beautifully acted film.", "A dull, lifeless waste of time."])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))


def test_prompt_tuning_generation_matches_hf_generate(smol: Backbone) -> None:
    from transformers import LlamaForCausalLM

    model = PromptModel.build(smol, "prompt_tuning", ["a", "b"], method_options={"num_tokens": 4}).eval()
    text = "The capital of France is"
    ours = model.generate([text], max_new_tokens=3, stop_at_eos=False)[0]
    full = LlamaForCausalLM(smol.model.config)
    full.model, full.lm_head = smol.model, smol.lm_head
    ids = torch.tensor([smol.tokenizer(text)["input_ids"]])
    embeds = torch.cat([model.method.prompt.unsqueeze(0), smol.embed(ids)], dim=1).detach()
    with torch.no_grad():
        ref = full.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                            max_new_tokens=3, do_sample=False)
    assert ours == smol.tokenizer.decode(ref[0], skip_special_tokens=True)
