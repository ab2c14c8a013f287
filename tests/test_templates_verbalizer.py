"""Templates (the input side), P-tuning's slots, and the verbaliser head (the label side)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import batches
from promptlearning.data.examples import Example
from promptlearning.data.templates import Template
from promptlearning.errors import ConfigError
from promptlearning.heads.base import HeadConfig
from promptlearning.injection import fill_template_slots, make_context
from promptlearning.model import PromptModel

from .conftest import toy_examples

VERB = HeadConfig(kind="verbalizer", label_words={"neg": ["bad", "awful"], "pos": ["good", "great"]})


def test_template_places_parts_and_slots(bert: Backbone) -> None:
    template = Template.parse("[P2] {text_a} [P1] {text_b}")
    ids, slots = template.render(bert.tokenizer, Example("great movie", 1, "bad film"), 32)
    tokens = bert.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert slots == [-1, 0, 1, -1, -1, 2, -1, -1, -1]
    assert tokens[3:5] == ["great", "movie"] and tokens[6:8] == ["bad", "film"]


def test_template_truncates_the_input_not_the_fixed_words(bert: Backbone) -> None:
    template = Template.parse("{text_a} it was")
    ids, _ = template.render(bert.tokenizer, Example(" ".join(["good"] * 50), 1), 10)
    tokens = bert.tokenizer.convert_ids_to_tokens(ids)
    assert len(ids) == 10 and tokens[-3:] == ["it", "was", "[SEP]"]


def test_template_without_input_slot_is_refused() -> None:
    with pytest.raises(ConfigError, match="no input slot"):
        Template.parse("[P3] it was")


def test_p_tuning_vectors_land_on_the_slots(bert: Backbone) -> None:
    model = PromptModel.build(bert, "p_tuning", ["neg", "pos"], method_options={"template": "[P2] {text_a} [P1]"})
    batch = batches(model.encode(toy_examples(2)[:2]), 2, model.pad_id)[0]
    assert batch.prompt_slots is not None
    ctx = make_context(bert, model.method, batch)
    prompt = model.method.template_prompt(ctx)
    assert prompt is not None and prompt.shape == (2, 3, 32)
    assert ctx.text_embeds is not None
    filled = fill_template_slots(ctx.text_embeds, batch.prompt_slots, prompt)
    slots = batch.prompt_slots
    for row in range(2):
        for pos, slot in enumerate(slots[row].tolist()):
            expected = prompt[row, slot] if slot >= 0 else ctx.text_embeds[row, pos]
            assert torch.equal(filled[row, pos], expected)
    assert slots[0].tolist()[:2] == [-1, 0] and (slots[0] == 2).sum() == 1


def test_template_and_method_slots_must_match(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="0 \\[P\\] prompt slot"):
        PromptModel.build(bert, "p_tuning", ["neg", "pos"], template="{text_a} it was")
    with pytest.raises(ConfigError, match="remove the \\[P\\] slots"):
        PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], template="[P2] {text_a}")


def test_verbalizer_scores_label_words_with_no_parameters(llama: Backbone, tmp_path: Path) -> None:
    model = PromptModel.build(llama, "fixed_prompt", ["neg", "pos"], head=VERB, task="mr")
    assert model.num_trainable() == 0
    assert model.template and "{text_a}" in model.template
    probs = model.predict_proba(["great movie", "awful film"])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))
    model.save_pretrained(tmp_path)
    again = PromptModel.from_pretrained(tmp_path, backbone=llama)
    assert torch.allclose(again.predict_proba(["great movie"]), probs[:1])


def test_verbalizer_equals_lm_next_token_scores(llama: Backbone) -> None:
    model = PromptModel.build(llama, "fixed_prompt", ["neg", "pos"], head=VERB, template="{text_a} it was").eval()
    batch = batches(model.encode([Example("great movie", 1)]), 1, model.pad_id, True)[0]
    logits = model(batch).logits
    hidden = llama.model(input_ids=batch.input_ids).last_hidden_state[:, -1]
    assert llama.lm_head is not None
    lp = llama.lm_head(hidden).log_softmax(-1)[0]
    ids = {w: llama.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ("bad", "awful", "good", "great")}
    expected = torch.stack([torch.logsumexp(lp[[ids["bad"], ids["awful"]]], 0),
                            torch.logsumexp(lp[[ids["good"], ids["great"]]], 0)])
    assert torch.allclose(logits[0], expected, atol=1e-5)


@pytest.mark.parametrize("words, message", [
    ({"neg": ["bad"]}, "not in the verbaliser"),
    ({"neg": ["bad"], "pos": ["bad"]}, "collide"),
    ({"neg": ["bad"], "pos": []}, "no verbaliser words"),
    ({"neg": ["bad"], "pos": ["  "]}, "cannot be scored"),
    ({"neg": ["bad"], "pos": ["good"], "meh": ["so"]}, "unknown label"),
])
def test_bad_label_words_are_clear_errors(llama: Backbone, words: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PromptModel.build(llama, "fixed_prompt", ["neg", "pos"], head=HeadConfig(kind="verbalizer", label_words=words))


def test_verbalizer_needs_an_lm_head(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="needs a backbone with an LM head"):
        PromptModel.build(bert, "fixed_prompt", ["neg", "pos"], head=HeadConfig(kind="verbalizer"))


@pytest.mark.parametrize("method", ["prompt_tuning", "p_tuning", "prefix_tuning", "generator", "p_tuning_v2"])
def test_every_method_works_with_the_verbalizer(llama: Backbone, method: str) -> None:
    model = PromptModel.build(llama, method, ["neg", "pos"], head=VERB, task="mr")
    batch = batches(model.encode(toy_examples(2)), 4, model.pad_id, True)[0]
    loss = model(batch).loss
    assert loss is not None
    loss.backward()
    assert all(p.grad is not None for p in model.method.parameters() if p.requires_grad)


def test_multi_token_words_score_every_token(llama: Backbone) -> None:
    words = {"neg": ["very bad", "awful"], "pos": ["very good"]}
    model = PromptModel.build(llama, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2},
                              head=HeadConfig(kind="verbalizer", label_words=words), template="{text_a} it was").eval()
    examples = [Example("great movie", 1), Example("i hate this boring film", 0)]
    batch = batches(model.encode(examples), 2, model.pad_id, True)[0]
    with torch.no_grad():
        logits = model(batch).logits
    assert llama.lm_head is not None
    for row, example in enumerate(examples):
        text_ids = list(model.encode([example])[0].input_ids)
        prompt = model.method.prompt.detach().unsqueeze(0)  # type: ignore[union-attr]
        per_label = []
        for label in ("neg", "pos"):
            word_scores = []
            for word in words[label]:
                w = llama.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                ids = torch.tensor([text_ids + w[:-1]])
                with torch.no_grad():
                    hidden = llama.model(inputs_embeds=torch.cat([prompt, llama.embed(ids)], 1)).last_hidden_state
                    lp = llama.lm_head(hidden[0, -len(w):]).log_softmax(-1)
                word_scores.append(sum(lp[i, t] for i, t in enumerate(w)))
            per_label.append(torch.logsumexp(torch.stack(word_scores), 0))
        assert torch.allclose(logits[row], torch.stack(per_label), atol=1e-4)
