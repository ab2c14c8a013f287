"""Token labelling on the command line: `train` a tagger, `evaluate` it (word scores, spans for BIO tags,
another domain) and `predict` word/TAG; every mistake one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import fails, ok
from tests.token_toy import WORDS, bio_sentences, toy_sentences, write_conll, write_word_tag

FAST = ["--backbone", "tiny-llama", "--max-steps", "4", "--eval-every", "2", "--quiet", "--shots", "8"]


def _train(capsys: pytest.CaptureFixture[str], out: Path, *data: str) -> Path:
    printed = ok(capsys, "train", *data, "--head", "token_classification", "--method", "prompt_tuning",
                 "--option", "num_tokens=2", "--output", str(out), *FAST)
    assert "adapter (best on dev) saved to" in printed
    return out / "best"


def test_train_evaluate_predict_a_pos_tagger(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    corpus = write_word_tag(tmp_path / "pos.txt", toy_sentences(60))
    adapter = _train(capsys, tmp_path / "run", "--train-file", str(corpus))
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--train-file", str(corpus)))
    assert scores["task"] == "pos" and scores["scheme"] == "tags" and scores["words"] > scores["n"] > 0
    assert {"accuracy", "macro_f1", "words_cut", "unseen_tag_words"} <= set(scores) and "f1" not in scores
    lines = ok(capsys, "predict", "--adapter", str(adapter), "the zebra was good", "a film").splitlines()
    assert [[pair.rsplit("/", 1)[0] for pair in line.split()] for line in lines] == [
        ["the", "zebra", "was", "good"], ["a", "film"]]
    assert all(pair.rsplit("/", 1)[1] in WORDS for line in lines for pair in line.split())
    [row] = [json.loads(x) for x in ok(capsys, "predict", "--adapter", str(adapter), "--json", "the film").splitlines()]
    assert row["words"] == ["the", "film"] and len(row["tags"]) == 2 and row["text"] == "the film"


def test_bio_tags_from_conll_are_scored_as_spans(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    corpus = write_conll(tmp_path / "ner.conll", bio_sentences(60), middle="NN")
    adapter = _train(capsys, tmp_path / "run", "--train-file", str(corpus))
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--train-file", str(corpus)))
    assert scores["scheme"] == "bio" and {"precision", "recall", "f1", "accuracy"} <= set(scores)
    by_column = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(corpus),
                              "--label-column", "3"))
    assert by_column["words"] == sum(len(w) for w, _ in bio_sentences(60)) and by_column["unseen_tags"] == []


def test_another_domain_counts_tags_the_tagger_lacks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    adapter = _train(capsys, tmp_path / "run", "--train-file", str(write_word_tag(tmp_path / "a.txt", toy_sentences(60))))
    other = write_word_tag(tmp_path / "b.txt", [(["the", "film", "!"], ["DT", "NN", "."]), (["a", "plot"], ["DT", "NN"])])
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(other)))
    assert scores["unseen_tags"] == ["."] and scores["unseen_tag_words"] == 1 and scores["words"] == 5
    assert scores["accuracy"] <= 4 / 5


def _conll_with_a_long_line(tmp_path: Path) -> Path:
    path = write_conll(tmp_path / "bad.conll", toy_sentences(20))
    path.write_text(path.read_text() + "zebra NN extra\n")
    return path


@pytest.mark.parametrize(("argv", "expected"), [
    (["--task", "mr", "--head", "token_classification"], "labels whole texts, not words"),
    (["--train-file", "{bad_conll}", "--head", "token_classification"], "has 3 columns but line 1 has 2"),
    (["--train-file", "{bad_word_tag}", "--head", "token_classification"], "is not word/TAG"),
    (["--train-file", "{good}", "--test-file", "{unseen}", "--head", "token_classification"], "training data never uses"),
    (["--train-file", "{good}", "--head", "token_classification", "--label-column", "tag"], "is a column number"),
    (["--train-file", "{good}", "--head", "token_classification", "--pooling", "mean"], "takes no pooling option"),
    (["--tasks", "pos_wsj,pos_oanc"], "one task at a time"),
    (["--task", "pos_wsj", "--head", "classification"], "--head token_classification"),
])
def test_tagging_mistakes_are_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              argv: list[str], expected: str) -> None:
    files = {"bad_conll": _conll_with_a_long_line(tmp_path),
             "bad_word_tag": (tmp_path / "bad.txt"),
             "good": write_word_tag(tmp_path / "good.txt", toy_sentences(40)),
             "unseen": write_word_tag(tmp_path / "unseen.txt", [(["the", "film"], ["DT", "NNX"])])}
    files["bad_word_tag"].write_text("the/DT film/NN\nthe film\n")
    line = fails(capsys, "train", *[a.format(**{k: str(v) for k, v in files.items()}) for a in argv], *FAST)
    assert expected in line


def test_evaluating_a_tagger_on_your_data_needs_the_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    adapter = _train(capsys, tmp_path / "run", "--train-file", str(write_word_tag(tmp_path / "a.txt", toy_sentences(60))))
    assert "pass --test-file" in fails(capsys, "evaluate", "--adapter", str(adapter))
    assert "--split dev is drawn from the training data" in fails(
        capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(tmp_path / "a.txt"), "--split", "dev")
