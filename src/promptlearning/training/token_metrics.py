"""Scores of a tagger: per-word accuracy and macro-F1, and entity-level F1 for BIO tags (seqeval).

Every word of the evaluated sentences counts, so two kinds of word are errors the model could
not avoid and are reported apart rather than dropped: words whose first sub-token ``max_length``
cut off (``words_cut``) and words whose gold tag the model's tag set lacks (``unseen_tag_words``,
e.g. OANC's plain ``"`` tag under a WSJ tagger); ``accuracy_known_tags`` leaves the latter out.

Tags that all read ``O``, ``B-x`` or ``I-x`` (BIO / IOB2) name spans: they are scored as spans
by seqeval's entity-level precision, recall and F1 (conlleval's rules), the number NER papers
report; token accuracy is reported beside it, but is mostly the easy ``O`` words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from promptlearning.data.templates import Template
from promptlearning.data.token_batching import TokenEncoded, encode_tagged, tagged_batches

if TYPE_CHECKING:
    from promptlearning.model import PromptModel

_BIO = re.compile(r"^(O|[BI]-.+)$")


def is_bio(tags: Iterable[str]) -> bool:
    """Whether a tag set is BIO / IOB2 (every tag O, B-x or I-x, and some B-x): scored as spans."""
    tags = list(tags)
    return bool(tags) and all(_BIO.match(t) for t in tags) and any(t.startswith("B-") for t in tags)


def macro_f1_tags(pred: Sequence[str | None], gold: Sequence[str], known: Collection[str]) -> float:
    """Mean per-tag F1 over the tags that occur (in the gold words the model could tag, or in its
    predictions): a tag neither present nor predicted says nothing, and counting it as 0 would
    punish a test set for being small."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for p, g in zip(pred, gold, strict=True):
        if p == g:
            tp[g] += 1
            continue
        if p is not None:
            fp[p] += 1
        if g in known:
            fn[g] += 1
    present = {g for g in gold if g in known} | {p for p in pred if p is not None}
    if not present:
        return 0.0
    return sum(2 * tp[t] / (2 * tp[t] + fp[t] + fn[t]) if tp[t] else 0.0 for t in present) / len(present)


def tag_scores(pred: Sequence[Sequence[str | None]], gold: Sequence[Sequence[str]],
               known: Collection[str]) -> dict[str, Any]:
    """Scores of predicted tags (None: a word cut off, never right) against gold tags, sentence by sentence.

    ``known`` is the model's tag set: gold tags outside it are counted in ``unseen_tag_words``."""
    flat_pred = [p for sent in pred for p in sent]
    flat_gold = [g for sent in gold for g in sent]
    if len(flat_pred) != len(flat_gold):
        raise ValueError("predicted and gold tags differ in length")
    right = sum(p == g for p, g in zip(flat_pred, flat_gold, strict=True))
    known_words = [(p, g) for p, g in zip(flat_pred, flat_gold, strict=True) if g in known]
    words = len(flat_gold)
    out: dict[str, Any] = {
        "accuracy": right / max(words, 1),
        "macro_f1": macro_f1_tags(flat_pred, flat_gold, known),
        "n": len(gold), "words": words,
        "words_cut": sum(p is None for p in flat_pred),
        "unseen_tag_words": words - len(known_words),
        "accuracy_known_tags": sum(p == g for p, g in known_words) / max(len(known_words), 1),
    }
    if is_bio(known):
        from seqeval.metrics import f1_score, precision_score, recall_score

        spans_pred = [[p if p is not None else "O" for p in sent] for sent in pred]
        spans_gold = [list(sent) for sent in gold]
        out.update({"scheme": "bio",
                    "precision": float(precision_score(spans_gold, spans_pred, zero_division=0)),
                    "recall": float(recall_score(spans_gold, spans_pred, zero_division=0)),
                    "f1": float(f1_score(spans_gold, spans_pred, zero_division=0))})
    else:
        out["scheme"] = "tags"
    return out


@torch.no_grad()
def predict_word_tags(model: PromptModel, items: Sequence[TokenEncoded], batch_size: int = 64) -> list[list[int]]:
    """Per sentence, the predicted tag id of each word (at its first sub-token; -1 where it was cut off).

    Sentences run shortest first (less padding); masking and positions from the mask keep a row's
    scores independent of its batch-mates."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    out: list[list[int]] = [[] for _ in items]
    done = 0
    for batch in tagged_batches(items, batch_size, model.pad_id, model.left_pad, order=order):
        rows = order[done:done + len(batch)]
        done += len(batch)
        batch.labels = None  # no loss needed to predict
        best = model(batch.to(model.device)).logits.argmax(-1).cpu()  # (B, L)
        width = best.shape[1]
        for r, i in enumerate(rows):
            item = items[i]
            shift = width - len(item.input_ids) if model.left_pad else 0  # left padding moves the row right
            out[i] = [int(best[r, s + shift]) if s >= 0 else -1 for s in item.word_starts]
    model.train(was_training)
    return out


def tagger_template(model: PromptModel) -> Template | None:
    """The template a tagger's words are encoded in (its adapter's own), or None for the bare words."""
    text = model.template_of(0)
    return Template.parse(text) if text else None


def tag_texts(model: PromptModel, texts: Sequence[str], batch_size: int = 32) -> list[list[tuple[str, str | None]]]:
    """(word, tag) per whitespace-separated word of each text (tag None: the word lies past max_length);
    what `predict` prints and the server's /v1/tag answers."""
    sentences: list[tuple[Sequence[str], Sequence[str] | None]] = [(t.split(), None) for t in texts]
    items = encode_tagged(model.backbone.tokenizer, sentences, {t: i for i, t in enumerate(model.labels)},
                          model.max_length, tagger_template(model))
    tags = list(model.labels)
    return [[(w, tags[p] if p >= 0 else None) for w, p in zip(words, pred, strict=True)]
            for (words, _), pred in zip(sentences, predict_word_tags(model, items, batch_size), strict=True)]


def evaluate_tagged(model: PromptModel, items: Sequence[TokenEncoded], batch_size: int = 64) -> dict[str, Any]:
    """:func:`tag_scores` of the model on tokenised tagged sentences (their gold tags travel with them)."""
    tags = list(model.labels)
    pred = [[tags[t] if t >= 0 else None for t in sent] for sent in predict_word_tags(model, items, batch_size)]
    return tag_scores(pred, [list(item.gold) for item in items], set(tags))
