"""Tagged data: the word/TAG and CoNLL readers (and their one-line refusals), tasks from files, the fixed
test split and few-shot K sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.data.tagging import (
    TaggedData,
    build_tagged_data,
    fixed_test_count,
    load_tagged_files,
    looks_like_word_tag,
    read_conll,
    read_tagged_file,
    read_word_tag,
    tagged_few_shot,
)
from promptlearning.errors import DataError
from tests.token_toy import toy_sentences, write_conll, write_word_tag


def _one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------- word/TAG
def test_word_tag_lines_split_at_the_last_slash() -> None:
    text = "Pierre/NNP Vinken/NNP ,/, 61/CD\n\n1\\/2/CD of/IN it/PRP\n"
    assert read_word_tag(text, "x") == [(["Pierre", "Vinken", ",", "61"], ["NNP", "NNP", ",", "CD"]),
                                        (["1\\/2", "of", "it"], ["CD", "IN", "PRP"])]


@pytest.mark.parametrize("bad", ["the/DT dog", "the/DT /NN", "the/DT dog/"])
def test_a_token_that_is_not_word_tag_is_a_one_line_error(bad: str) -> None:
    with pytest.raises(DataError) as caught:
        read_word_tag(f"a/DT b/NN\n{bad}\n", "f.txt")
    assert "f.txt line 2" in _one_line(caught) and "word/TAG" in str(caught.value)


# ---------------------------------------------------------------------------- CoNLL
CONLL = "-DOCSTART- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n"


def test_conll_columns_by_number_default_the_last() -> None:
    assert read_conll(CONLL, "x") == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]
    assert read_conll(CONLL, "x", tag_column=2)[0] == (["EU", "rejects"], ["NNP", "VBZ"])
    assert read_conll(CONLL, "x", tag_column=-2) == read_conll(CONLL, "x", tag_column=2)
    assert read_conll(CONLL, "x", tag_column=1, word_column=2)[1] == (["NNP", "NNP"], ["Peter", "Blackburn"])


def test_a_conll_line_with_another_column_count_is_a_one_line_error() -> None:
    with pytest.raises(DataError) as caught:
        read_conll("Paris B-LOC\nis O\nnice JJ O\n", "f.conll")
    assert "f.conll line 3 has 3 columns but line 1 has 2" in _one_line(caught)


@pytest.mark.parametrize(("text", "column", "expected"), [
    ("Paris B-LOC\n", 3, "no column 3"), ("Paris B-LOC\n", 0, "no column 0"), ("Paris\nis\n", -1, "one column")])
def test_bad_columns_are_one_line_errors(text: str, column: int, expected: str) -> None:
    with pytest.raises(DataError) as caught:
        read_conll(text, "f.conll", tag_column=column)
    assert expected in _one_line(caught)


def test_the_format_is_told_by_the_first_line(tmp_path: Path) -> None:
    sentences = toy_sentences(6)
    assert looks_like_word_tag("the/DT dog/NN\n") and not looks_like_word_tag("the DT\n")
    assert not looks_like_word_tag("-DOCSTART- O\n\n1/2 CD\n")  # a slash in a CoNLL word is no word/TAG line
    assert read_tagged_file(write_word_tag(tmp_path / "a.txt", sentences)) == sentences
    assert read_tagged_file(write_conll(tmp_path / "a.conll", sentences)) == sentences
    assert read_tagged_file(write_conll(tmp_path / "b.conll", sentences, middle="X"), tag_column=-1) == sentences


@pytest.mark.parametrize(("content", "expected"), [(b"", "has no sentences"), (b"\n\n", "has no sentences"),
                                                   (b"caf\xe9/NN\n", "not UTF-8")])
def test_unreadable_files_are_one_line_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_tagged_file(path)
    assert expected in _one_line(caught)
    with pytest.raises(DataError, match="does not exist"):
        read_tagged_file(tmp_path / "missing.txt")


# ---------------------------------------------------------------------------- tasks from files
def test_a_test_tag_the_training_file_never_uses_is_refused(tmp_path: Path) -> None:
    train = write_word_tag(tmp_path / "train.txt", toy_sentences(10))
    test = write_word_tag(tmp_path / "test.txt", [(["the", "film"], ["DT", "NNX"])])
    with pytest.raises(DataError) as caught:
        load_tagged_files(str(train), str(test))
    assert "NNX" in _one_line(caught) and "training data never uses" in str(caught.value)


def test_files_make_a_task_with_the_training_tag_set(tmp_path: Path) -> None:
    sentences = toy_sentences(20)
    held = sentences[:3] + toy_sentences(3, seed=9)
    data = load_tagged_files(str(write_word_tag(tmp_path / "mine.txt", sentences)),
                             str(write_word_tag(tmp_path / "held.txt", held)))
    assert data.name == "mine" and data.tags == sorted({t for _, ts in sentences for t in ts})
    assert len(data.test) == len({tuple(w) for w, _ in held})
    assert not {s.words for s in data.pool} & {s.words for s in data.test}  # a test sentence never trains


def test_the_fixed_split_is_deterministic_and_deduplicated() -> None:
    sentences = toy_sentences(60)
    data = build_tagged_data("t", "d", sentences + sentences[:5])
    again = build_tagged_data("t", "d", list(sentences))
    unique = len({tuple(w) for w, _ in sentences})
    assert len(data.test) == fixed_test_count(unique) and len(data.pool) + len(data.test) == unique
    assert data.pool == again.pool and data.test == again.test
    assert not {s.words for s in data.pool} & {s.words for s in data.test}
    assert data.names(data.pool[0]) == [data.tags[t] for t in data.pool[0].tags]


# ---------------------------------------------------------------------------- few-shot K sentences
def _data() -> TaggedData:
    return build_tagged_data("t", "d", toy_sentences(80))


def test_few_shot_draws_k_sentences_seeded_and_disjoint() -> None:
    data = _data()
    split = tagged_few_shot(data, 8, 13)
    assert len(split.train) == 8 and len(split.dev) == 8 and split.test == data.test
    assert not {id(s) for s in split.train} & {id(s) for s in split.dev}
    assert set(split.train + split.dev) <= set(data.pool)
    assert tagged_few_shot(data, 8, 13) == split
    assert tagged_few_shot(data, 8, 21).train != split.train
    assert len(tagged_few_shot(data, 4, 13, dev_k=2).dev) == 2


def test_more_shots_than_the_pool_holds_is_a_one_line_error() -> None:
    data = _data()
    with pytest.raises(DataError) as caught:
        tagged_few_shot(data, len(data.pool), 13)
    assert f"--shots <= {len(data.pool) // 2}" in _one_line(caught)
