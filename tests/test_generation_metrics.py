"""Generation metrics against values computed by hand on small examples."""

from __future__ import annotations

import pytest

from promptlearning.training.generation_eval import answer_text
from promptlearning.training.generation_metrics import (
    corpus_bleu,
    exact_match,
    normalize_answer,
    rouge_l,
    text_scores,
    token_f1,
)


def test_normalisation_drops_case_punctuation_and_articles() -> None:
    assert normalize_answer("The  Eiffel Tower.") == "eiffel tower"
    assert normalize_answer("An apple, a pear!") == "apple pear"
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Paris", "London") == 0.0


def test_token_f1_by_hand() -> None:
    # pred {big, red, apple}, gold {red, apple, pie}: 2 shared, precision 2/3, recall 2/3
    assert token_f1("the big red apple", "a red apple pie") == pytest.approx(2 / 3)
    # words are a multiset: "red red" shares one red with "red": precision 1/2, recall 1
    assert token_f1("red red", "red") == pytest.approx(2 / 3)
    assert token_f1("blue", "red") == 0.0
    assert token_f1("", "red") == 0.0 and token_f1("the", "a") == 1.0  # nothing left of either: equal


def test_rouge_l_by_hand() -> None:
    # LCS of "the cat sat on the mat" and "the cat is on the mat" is 5 of 6 words each way
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # "Paris" against "Paris France": precision 1, recall 1/2
    assert rouge_l("Paris", "Paris France") == pytest.approx(2 / 3)


def test_bleu_by_hand() -> None:
    # one sentence, same length (no brevity penalty); n-gram precisions 4/5, 3/4, 2/3, 1/2
    expected = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert corpus_bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(expected)
    assert corpus_bleu(["one two three four"], ["one two three four"]) == pytest.approx(100.0)


def test_text_scores_average_over_pairs() -> None:
    scores = text_scores(["Paris", "london", "red red"], ["paris", "Paris", "red"])
    assert scores["n"] == 3
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["token_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert scores["rouge_l"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    with pytest.raises(ValueError):
        text_scores(["a"], ["a", "b"])


def test_the_answer_is_the_first_line_with_text() -> None:
    assert answer_text(" Paris\n\nQuestion: next?") == "Paris"
    assert answer_text("\n\n  Richard Nixon \n") == "Richard Nixon"
    assert answer_text("\n \n") == ""
