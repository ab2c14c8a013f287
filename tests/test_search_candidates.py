"""Discrete prompts, the vocabulary and the mutation/crossover operators: every edit keeps a prompt valid."""

from __future__ import annotations

import random

import pytest

from promptlearning.backbones import Backbone
from promptlearning.data.examples import Example
from promptlearning.data.prompts import HANDWRITTEN
from promptlearning.data.templates import Template
from promptlearning.errors import ConfigError
from promptlearning.search.candidates import DiscretePrompt, parse_seeds, words
from promptlearning.search.mutation import Mutator, phrase_pool
from promptlearning.search.scoring import fixed_tokens
from promptlearning.search.vocabulary import Vocabulary


@pytest.mark.parametrize("template", [*HANDWRITTEN.values(), "{text_a} It was", "Premise: {text_a} Answer: {text_b}",
                                      "Sentence {text_a}", "Q:\n{text_a}\nA:"])
def test_parse_renders_the_template_back(template: str) -> None:
    prompt = DiscretePrompt.parse(template)
    assert prompt.template == template
    assert "".join(words(prompt.phrases[-1])) == prompt.phrases[-1]
    slots = tuple(s for s in ("{text_a}", "{text_b}") if s in template)
    assert prompt.is_valid(40, slots)


def test_parse_cuts_phrases_and_keeps_the_input_a_phrase() -> None:
    prompt = DiscretePrompt.parse(HANDWRITTEN["mr"])
    assert prompt.phrases == ("Movie review:", " {text_a}", "\nIs this review positive or negative?", " Answer:")
    assert prompt.word_count() == 12


def test_invalid_prompts_are_named() -> None:
    assert DiscretePrompt(("Review:",)).problems(40) == ["needs {text_a} exactly once"]
    assert "contains template syntax" in DiscretePrompt(("[P2] x", " {text_a}")).problems(40)[0]
    assert "more than 2" in DiscretePrompt(("a b c", " {text_a}")).problems(2)[0]
    twice = DiscretePrompt(("{text_a}", " {text_a}"))
    assert not twice.is_valid(40)


def test_seed_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="seed-prompt list is empty"):
        parse_seeds([], 40)
    with pytest.raises(ConfigError, match="no input slot"):
        parse_seeds(["Review: it was"], 40)


def test_vocabulary_words_are_single_tokens_and_neighbours_are_words(llama: Backbone) -> None:
    vocab = Vocabulary(llama)
    assert len(vocab) > 20
    for token, word in zip(vocab.ids[:20], vocab.words[:20], strict=True):
        assert llama.tokenizer(" " + word, add_special_tokens=False)["input_ids"] == [token]
    near = vocab.neighbours("movie", 5)
    assert len(near) == 5 and "movie" not in near and set(near) <= set(vocab.words)
    assert vocab.neighbours("zzzz", 5) == []


@pytest.fixture(scope="module")
def mutator(llama: Backbone) -> Mutator:
    seeds = [DiscretePrompt.parse(HANDWRITTEN["mr"]), DiscretePrompt.parse("{text_a} It was")]
    return Mutator(Vocabulary(llama), phrase_pool(seeds), max_words=20)


def test_every_operator_keeps_prompts_valid(mutator: Mutator, llama: Backbone) -> None:
    rng = random.Random(0)
    population = [DiscretePrompt.parse(HANDWRITTEN["mr"]), DiscretePrompt.parse("{text_a} It was")]
    ops = [mutator.substitute, mutator.insert, mutator.delete_word, mutator.delete_phrase, mutator.swap,
           mutator.add_phrase]
    changed = 0
    for i in range(600):
        parent = rng.choice(population)
        if i % 3 == 0:
            child = mutator.crossover(parent, rng.choice(population), rng)
        else:
            child = ops[i % len(ops)](parent, rng)
        assert child.is_valid(20), (child, child.problems(20))
        # the template renders with the library's own template code, the input in its slot
        ids, _ = Template.parse(child.template).render(llama.tokenizer, Example("good movie", 1), 64)
        assert len(ids) > fixed_tokens(llama.tokenizer, child.template)
        changed += child != parent
        population.append(child)
        population = population[-30:]
    assert changed > 300  # the operators do edit prompts, not just return their parents


def test_operators_do_what_they_say(mutator: Mutator) -> None:
    rng = random.Random(1)
    base = DiscretePrompt.parse(HANDWRITTEN["mr"])
    assert mutator.delete_phrase(base, rng).word_count() < base.word_count()
    assert len(mutator.add_phrase(base, rng).phrases) == len(base.phrases) + 1
    assert mutator.delete_word(base, rng).word_count() == base.word_count() - 1
    grown = mutator.insert(base, rng)
    assert grown.word_count() == base.word_count() + 1
    swapped = mutator.swap(base, rng)
    assert sorted(p.strip() for p in swapped.phrases) == sorted(p.strip() for p in base.phrases)
    substituted = mutator.substitute(DiscretePrompt.parse("{text_a} movie"), rng)
    assert substituted.phrases[0] == "{text_a}" and substituted.phrases[1].strip() in mutator.vocabulary.neighbours(
        "movie", mutator.neighbours)


def test_mutations_never_exceed_the_word_limit(mutator: Mutator) -> None:
    rng = random.Random(2)
    prompt = DiscretePrompt.parse(HANDWRITTEN["mr"])
    for _ in range(300):
        prompt, _ = mutator.mutate(prompt, rng)
        assert prompt.word_count() <= 20


def test_candidate_words_come_from_the_task_text(llama: Backbone) -> None:
    vocab = Vocabulary(llama)
    rows = vocab.rows_in(["great movie, great film", "boring plot"], top=50, minimum=5)
    assert [vocab.words[r] for r in rows[:2]] == ["great", "movie"]
    assert len(rows) == 5 and len(set(rows)) == 5  # topped up to the minimum with vocabulary words
    assert len(vocab.rows_in(["great"] * 3, top=1)) == 1


def test_mutations_keep_room_for_the_input(llama: Backbone) -> None:
    seeds = [DiscretePrompt.parse(HANDWRITTEN["mr"])]
    limit = fixed_tokens(llama.tokenizer, seeds[0].template) + 3
    mutator = Mutator(Vocabulary(llama), phrase_pool(seeds), max_words=60,
                      fits=lambda p: fixed_tokens(llama.tokenizer, p.template) <= limit)
    rng = random.Random(3)
    prompt = seeds[0]
    for _ in range(300):
        prompt, _ = mutator.mutate(prompt, rng)
        assert fixed_tokens(llama.tokenizer, prompt.template) <= limit
