"""Words and positions: a word is labelled at its first sub-token and nowhere else, through templates,
padding on either side and the prompt positions methods prepend; the loss reads word starts only."""

from __future__ import annotations

import copy

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.templates import Template, tokenize
from promptlearning.data.token_batching import IGNORE, collate_tagged, encode_tagged, encode_words
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.training.token_metrics import evaluate_tagged, predict_word_tags
from tests.token_toy import toy_sentences

TAGS = ["DT", "JJ", "NN", "RB", "VBZ"]
TAG_IDS = {t: i for i, t in enumerate(TAGS)}
WORDS = ["the", "zebra", "was", "really", "good"]  # zebra: five sub-tokens in the tiny vocabulary


def _first_piece(backbone: Backbone, word: str) -> int:
    return tokenize(backbone.tokenizer, word)[0]


def _model(backbone: Backbone, method: str = "prompt_tuning", options: dict[str, object] | None = None) -> PromptModel:
    return PromptModel.build(backbone, method, TAGS, method_options={"num_tokens": 3} if options is None else options,
                             head=HeadConfig(kind="token_classification"), max_length=48)


@pytest.mark.parametrize("template", [None, "[P2] {text_a} [P1]", "Tag: {text_a} done"])
def test_each_word_is_labelled_at_its_first_sub_token_only(any_backbone: Backbone, template: str | None) -> None:
    parsed = Template.parse(template) if template else None
    ids, slots, starts = encode_words(any_backbone.tokenizer, WORDS, 48, parsed)
    assert len(tokenize(any_backbone.tokenizer, "zebra")) > 1
    assert [ids[s] for s in starts] == [_first_piece(any_backbone, w) for w in WORDS]
    assert starts == sorted(starts) and len(set(starts)) == len(WORDS)
    if parsed is not None and parsed.num_pseudo:
        assert slots is not None and all(slots[s] == -1 for s in starts)
        assert sum(s >= 0 for s in slots) == parsed.num_pseudo
    [item] = encode_tagged(any_backbone.tokenizer, [(WORDS, ["DT", "NN", "VBZ", "RB", "JJ"])], TAG_IDS, 48, parsed)
    assert [i for i, t in enumerate(item.tags) if t != IGNORE] == starts
    assert [item.tags[s] for s in starts] == [TAG_IDS[t] for t in ["DT", "NN", "VBZ", "RB", "JJ"]]
    assert len(item.tags) == len(item.input_ids)


def test_a_tag_outside_the_models_set_trains_nothing_but_stays_gold(bert: Backbone) -> None:
    [item] = encode_tagged(bert.tokenizer, [(["the", "film"], ["DT", "XX"])], TAG_IDS, 48)
    assert item.tags[item.word_starts[1]] == IGNORE and item.gold == ("DT", "XX")


def test_words_past_max_length_have_no_position(bert: Backbone) -> None:
    ids, _, starts = encode_words(bert.tokenizer, WORDS, 6)  # [CLS] the z ##e ##b [SEP]
    assert len(ids) == 6 and starts == [1, 2, -1, -1, -1]


def test_batches_pad_labels_like_the_ids(any_backbone: Backbone) -> None:
    model = _model(any_backbone)
    sentences = toy_sentences(4, seed=3)
    items = encode_tagged(any_backbone.tokenizer, sentences, TAG_IDS, 48)
    batch = collate_tagged(items, model.pad_id, model.left_pad)
    assert batch.labels is not None and batch.labels.shape == batch.input_ids.shape
    assert (batch.labels[batch.attention_mask == 0] == IGNORE).all()
    for row, (words, tags) in enumerate(sentences):
        scored = (batch.labels[row] != IGNORE).nonzero().flatten()
        assert batch.input_ids[row, scored].tolist() == [_first_piece(any_backbone, w) for w in words]
        assert batch.labels[row, scored].tolist() == [TAG_IDS[t] for t in tags]


@pytest.mark.parametrize(("method", "options"), [("prompt_tuning", {"num_tokens": 3}), ("p_tuning_v2", {"num_tokens": 2}),
                                                 ("prefix_tuning", {}), ("p_tuning", {}), ("finetune", {})])
def test_the_head_scores_input_positions_after_the_prompt(any_backbone: Backbone, method: str,
                                                          options: dict[str, object]) -> None:
    backbone = copy.deepcopy(any_backbone)
    model = _model(backbone, method, options).eval()
    template = Template.parse(model.template) if model.template else None
    items = encode_tagged(backbone.tokenizer, toy_sentences(3, seed=1), TAG_IDS, 48, template)
    batch = collate_tagged(items, model.pad_id, model.left_pad)
    scores = model(batch).logits
    assert scores.shape == (*batch.input_ids.shape, len(TAGS))
    hidden, ctx = model._run(batch)
    assert ctx.num_prompt_positions == model.method.num_prompt_positions
    assert hidden.shape[1] == ctx.num_prompt_positions + batch.input_ids.shape[1]
    assert torch.allclose(scores, model.head.linear(hidden[:, ctx.num_prompt_positions:]))


def test_the_loss_reads_word_starts_only(bert: Backbone) -> None:
    model = _model(bert)
    items = encode_tagged(bert.tokenizer, toy_sentences(3), TAG_IDS, 48)
    batch = collate_tagged(items, model.pad_id, model.left_pad)
    assert batch.labels is not None
    scores = torch.randn(*batch.input_ids.shape, len(TAGS), requires_grad=True)
    loss = model.head.loss(scores, batch.labels)
    loss.backward()
    assert scores.grad is not None
    touched = scores.grad.abs().sum(-1) > 0
    assert torch.equal(touched, batch.labels != IGNORE)
    scored = batch.labels != IGNORE
    expected = torch.nn.functional.cross_entropy(scores[scored], batch.labels[scored])
    assert torch.allclose(loss, expected)
    nothing = torch.full_like(batch.labels, IGNORE)
    assert model.head.loss(scores, nothing).item() == 0.0  # a batch of cut words: no NaN


def test_a_sentence_is_tagged_the_same_alone_or_in_a_padded_batch(any_backbone: Backbone) -> None:
    model = _model(any_backbone)
    with torch.no_grad():
        model.head.linear.weight.normal_(0, 1.0)  # a head whose argmax varies across positions
    sentences = toy_sentences(6, seed=4)
    items = encode_tagged(any_backbone.tokenizer, sentences, TAG_IDS, 48)
    together = predict_word_tags(model, items, batch_size=6)
    alone = [predict_word_tags(model, [item])[0] for item in items]
    assert together == alone
    assert [len(p) for p in together] == [len(w) for w, _ in sentences]
    assert len({t for p in together for t in p}) > 1


def test_cut_words_count_as_errors(bert: Backbone) -> None:
    model = _model(bert)
    items = encode_tagged(bert.tokenizer, [(WORDS, ["DT", "NN", "VBZ", "RB", "JJ"])], TAG_IDS, 6)
    scores = evaluate_tagged(model, items)
    assert scores["words"] == 5 and scores["words_cut"] == 3 and scores["accuracy"] <= 2 / 5
