"""Generation data: the conversations reader, user pair files and their one-line refusals, the fixed test
split and few-shot draws, in-context prompts, and rows whose labels are exactly the target's tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.backbones import Backbone
from promptlearning.data.examples import Example
from promptlearning.data.target_batching import IGNORE, collate_targets, encode_pairs, target_ids
from promptlearning.data.templates import Template, tokenize
from promptlearning.data.text_pairs import (
    TextPair,
    build_pair_data,
    conversation_pairs,
    demonstration_template,
    load_generation_task,
    pair_few_shot,
    read_pair_file,
    target_separator,
)
from promptlearning.errors import DataError, UnknownNameError
from tests.pair_toy import toy_pairs, write_pairs

CONVERSATIONS = """categories:
- trivia
conversations:
- - Who was the 37th President of the United States?
  - Richard Nixon
- - What year was President John F. Kennedy assassinated?
  - 1963
- In a game of bingo, which number is "two little ducks"?
  - '22'
- - Which country?
  - "Ethiopia\\u00a0"
- - one
  - two
  - three
"""


def test_conversations_give_question_answer_pairs_and_skip_malformed_entries() -> None:
    pairs = conversation_pairs(CONVERSATIONS, "toy.yml")
    assert pairs == [TextPair("Who was the 37th President of the United States?", "Richard Nixon"),
                     TextPair("What year was President John F. Kennedy assassinated?", "1963"),
                     TextPair("Which country?", "Ethiopia")]
    with pytest.raises(DataError, match="is not valid YAML"):
        conversation_pairs("conversations: [- a", "bad.yml")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_pair_files_read_input_and_target_columns(tmp_path: Path, suffix: str) -> None:
    path = write_pairs(tmp_path / f"pairs{suffix}", toy_pairs(5))
    assert read_pair_file(path) == toy_pairs(5)
    other = write_pairs(tmp_path / f"other{suffix}", toy_pairs(3), "question", "answer")
    assert read_pair_file(other, "question", "answer") == toy_pairs(3)


@pytest.mark.parametrize(("content", "expected"), [
    ('{"input": "a film", "answer": "x"}\n', "no column 'target' (available: 'input', 'answer'); name the target "
                                             "column with --label-column"),
    ('{"question": "a film", "target": "x"}\n', "name the input column with --text-column"),
    ('{"input": "a film", "target": "  "}\n', "line 1: column 'target' is empty; give every target a text"),
    ('{"input": "a film", "target": ["x"]}\n', "holds ['x']; make it a text"),
    ('{"input": "a film", "target": "x"}\n{"input": \n', "line 2 is not valid JSON"),
    ("", "is empty"),
])
def test_bad_pair_files_are_one_line_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        read_pair_file(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_fixed_test_split_is_deterministic_and_disjoint() -> None:
    pairs = toy_pairs()
    data = build_pair_data("toy", "", "{text_a}", pairs + pairs[:3])  # repeated inputs are kept once
    again = build_pair_data("toy", "", "{text_a}", list(reversed(pairs)))
    assert len(data.test) == int(len(pairs) * 0.3) and len(data.pool) + len(data.test) == len(pairs)
    assert not {p.input for p in data.pool} & {p.input for p in data.test}
    assert data.test == build_pair_data("toy", "", "{text_a}", pairs).test
    assert len(again.test) == len(data.test)
    given = build_pair_data("toy", "", "{text_a}", pairs, test_pairs=pairs[:4])
    assert given.test == pairs[:4] and given.pool == pairs[4:]


def test_few_shot_draws_k_pairs_for_train_and_dev() -> None:
    data = build_pair_data("toy", "", "{text_a}", toy_pairs())
    split = pair_few_shot(data, 5, seed=3)
    assert len(split.train) == len(split.dev) == 5 and not set(split.train) & set(split.dev)
    assert pair_few_shot(data, 5, seed=3).train == split.train != pair_few_shot(data, 5, seed=4).train
    assert len(pair_few_shot(data, 5, seed=3, dev_k=2).dev) == 2
    with pytest.raises(DataError, match=r"use --shots <= 15"):
        pair_few_shot(data, 20, seed=3)


def test_unknown_generation_task_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="choose one of: trivia_qa"):
        load_generation_task("nope")


def test_demonstrations_are_written_in_the_template_before_the_input() -> None:
    demos = [TextPair("Who?", "Nixon"), TextPair("When?", "1963")]
    assert demonstration_template("Q: {text_a}\nA:", demos) == "Q: Who?\nA: Nixon\n\nQ: When?\nA: 1963\n\nQ: {text_a}\nA:"
    assert demonstration_template("{text_a}\n", demos[:1]) == "Who?\nNixon\n\n{text_a}\n"
    assert target_separator("{text_a}\n") == "" and target_separator("Answer:") == " "
    with pytest.raises(DataError, match="holds a template slot"):
        demonstration_template("Q: {text_a}", [TextPair("what is {text_a}?", "x")])


def test_labels_are_the_target_tokens_and_end_of_text_only(llama: Backbone) -> None:
    tokenizer = llama.tokenizer
    template = Template.parse("[P2] review : {text_a} answer :")
    pair = TextPair("the movie was good", "good movie")
    [item] = encode_pairs(tokenizer, template, [pair], 40)
    prompt, _ = template.render(tokenizer, Example(pair.input, 0), 40)
    target = tokenize(tokenizer, " good movie") + [tokenizer.eos_token_id]
    assert target_ids(tokenizer, template, pair.target) == target
    assert list(item.input_ids) == prompt + target
    assert list(item.targets) == [IGNORE] * len(prompt) + target  # template, [P] slots and input: ignored
    assert list(item.slots or []) == [0, 1] + [-1] * (len(prompt) + len(target) - 2)
    short = TextPair("the film was so very very really boring and bad", "bad film")
    rows = encode_pairs(tokenizer, template, [pair, short], 40)
    batch = collate_targets(rows, 0, left_pad=True)
    assert batch.labels is not None and batch.labels.shape == batch.input_ids.shape
    for row, item in enumerate(rows):
        width = len(item.input_ids)
        assert batch.labels[row, -width:].tolist() == list(item.targets)
        assert (batch.labels[row, :-width] == IGNORE).all()


def test_the_input_gives_way_to_the_target_and_a_target_too_long_is_refused(llama: Backbone) -> None:
    tokenizer = llama.tokenizer
    template = Template.parse("{text_a}")
    long_input = TextPair(" ".join(["good"] * 30), "bad film")
    [item] = encode_pairs(tokenizer, template, [long_input], 12)
    assert len(item.input_ids) == 12 and item.input_ids[-3:] == (*tokenize(tokenizer, "bad film"), tokenizer.eos_token_id)
    with pytest.raises(DataError, match="the target of pair 1 .* takes 7 tokens, leaving no room for its input within "
                                        "--max-length 7; raise --max-length or shorten the target"):
        encode_pairs(tokenizer, template, [TextPair("a film", "the movie was so very good")], 7)


@pytest.mark.real
def test_trivia_qa_is_the_packaged_trivia_pairs() -> None:
    data = load_generation_task("trivia_qa")
    assert len(data.pool) + len(data.test) == 260 and len(data.test) == 78
    every = data.pool + data.test
    assert TextPair("Who was the 37th President of the United States?", "Richard Nixon") in every
    assert data.template == "Question: {text_a}\nAnswer:"
