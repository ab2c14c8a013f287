"""Tagger scores: BIO tags as spans (seqeval, checked by hand), other tags by word accuracy and macro-F1
over the tags that occur; cut words and tags the model lacks are errors, counted apart."""

from __future__ import annotations

import pytest

from promptlearning.training.token_metrics import is_bio, macro_f1_tags, tag_scores

BIO_TAGS = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def test_bio_tags_are_scored_as_spans() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]
    # gold spans: PER 0-1, LOC 3, ORG 0-1; predicted: PER 0-1 (right), ORG 3 (wrong type), ORG 0 (cut short)
    scores = tag_scores(pred, gold, BIO_TAGS)
    assert scores["scheme"] == "bio"
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["accuracy"] == pytest.approx(5 / 7)  # words: most are right although most spans are not


def test_a_cut_word_predicts_no_span_and_is_a_wrong_word() -> None:
    scores = tag_scores([["B-PER", None]], [["B-PER", "B-LOC"]], BIO_TAGS)
    assert scores["words_cut"] == 1 and scores["accuracy"] == 0.5
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5


def test_other_tags_by_word_accuracy_and_macro_f1_over_tags_that_occur() -> None:
    known = {"DT", "NN", "VB", "JJ", "UH"}  # UH never occurs: it must not pull the mean down
    gold = [["DT", "NN", "VB"], ["DT", "JJ"]]
    pred = [["DT", "NN", "NN"], ["DT", "JJ"]]
    scores = tag_scores(pred, gold, known)
    assert scores["scheme"] == "tags" and "f1" not in scores
    assert scores["accuracy"] == pytest.approx(4 / 5)
    # DT 1.0, JJ 1.0, NN: tp 1 fp 1 -> 2/3, VB: tp 0 -> 0
    assert scores["macro_f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)


def test_tags_the_model_lacks_are_errors_counted_apart() -> None:
    known = {"DT", "NN", "''", "``"}
    gold = [["DT", "NN", '"'], ["DT", '"']]
    pred = [["DT", "NN", "''"], ["DT", "``"]]
    scores = tag_scores(pred, gold, known)
    assert scores["unseen_tag_words"] == 2 and scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["accuracy_known_tags"] == 1.0
    assert macro_f1_tags(["DT", "''"], ["DT", '"'], known) == pytest.approx((1 + 0) / 2)  # '"' is no class


@pytest.mark.parametrize(("tags", "bio"), [(["O", "B-PER", "I-PER"], True), (["B-X", "I-X"], True),
                                           (["O", "I-PER"], False), (["NN", "O"], False), (["O"], False),
                                           (["B-PER", "E-PER"], False)])
def test_the_bio_scheme_is_told_by_the_tag_set(tags: list[str], bio: bool) -> None:
    assert is_bio(tags) is bio
