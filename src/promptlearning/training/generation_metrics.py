"""Scores of generated answers against target texts: exact match, token F1, ROUGE-L and BLEU.

Exact match and token F1 follow SQuAD's evaluation script (the answers are short and factual):
both texts are normalised (lower case, punctuation and the articles a/an/the dropped, spaces
collapsed), exact match asks for equal normalised texts, token F1 is the harmonic mean of
precision and recall of the shared normalised words (a multiset). ROUGE-L is Google's
``rouge-score`` (the F-measure of the longest common subsequence, on its own lower-cased word
tokens), averaged over pairs; BLEU is ``sacrebleu``'s corpus BLEU (13a tokenisation, one
reference per answer), 0-100 as sacrebleu reports it. Every score but BLEU is in [0, 1].
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalisation)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, target: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(target))


def token_f1(prediction: str, target: str) -> float:
    """F1 of the normalised words two texts share; when either has no words, 1.0 if both have none."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(target).split()
    if not pred or not gold:
        return float(pred == gold)
    shared = sum((Counter(pred) & Counter(gold)).values())
    if not shared:
        return 0.0
    precision, recall = shared / len(pred), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, target: str) -> float:
    """ROUGE-L F-measure of one answer (``rouge-score``)."""
    return float(_rouge().score(target, prediction)["rougeL"].fmeasure)


def corpus_bleu(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU (0-100) of the answers against one reference each."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(targets)]).score)


def text_scores(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, Any]:
    """Mean exact match, token F1 and ROUGE-L over the pairs, and corpus BLEU; ``n`` pairs."""
    if len(predictions) != len(targets):
        raise ValueError("predictions and targets differ in number")
    n = len(targets)
    if not n:
        return {"exact_match": 0.0, "token_f1": 0.0, "rouge_l": 0.0, "bleu": 0.0, "n": 0}
    pairs = list(zip(predictions, targets, strict=True))
    return {"exact_match": sum(exact_match(p, t) for p, t in pairs) / n,
            "token_f1": sum(token_f1(p, t) for p, t in pairs) / n,
            "rouge_l": sum(rouge_l(p, t) for p, t in pairs) / n,
            "bleu": corpus_bleu(predictions, targets), "n": n}
