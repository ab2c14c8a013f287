"""Edits of discrete prompts: word-level and phrase-level mutations, and crossover.

Every operator takes a valid prompt and returns a valid one (or the parent unchanged when
its edit would break validity), so the search never scores a broken template:

* word level: substitute a word by one of its neighbours in embedding space, insert a word
  (a neighbour of the word beside it, or a trigger token: a frequent word of the task's text),
  delete a word;
* phrase level: delete a phrase, swap two phrases (the input slot is a phrase too, so this
  can move the input), add a phrase from the pool (phrases of the seed prompts and a few
  generic instructions);
* crossover: the child takes its parents' phrase lists cut at one point each, keeping the
  slots each holds once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from promptlearning.search.candidates import DiscretePrompt, is_slot, leading_space, split_phrases, words
from promptlearning.search.vocabulary import Vocabulary

GENERIC_PHRASES = (
    "Answer:", "The answer is", "It was", "In summary, it was", "Overall, the sentiment is", "Question:",
    "Text:", "Review:", "Sentence:", "Label:", "Classify the text.", "Read the text carefully.", "Is it",
)


@dataclass
class Mutator:
    """The mutation and crossover operators over one vocabulary and phrase pool."""

    vocabulary: Vocabulary
    phrase_pool: list[str]
    max_words: int = 40
    slots: tuple[str, ...] = ("{text_a}",)
    neighbours: int = 10
    trigger_top: int = 2000
    word_level: float = 0.6  # share of mutations made at word level (the rest at phrase level)
    trigger_rows: list[int] | None = None  # vocabulary rows inserted words come from (None: lowest ids)
    fits: Callable[[DiscretePrompt], bool] | None = None  # e.g. leaves room for the input within max_length

    def __post_init__(self) -> None:
        Op = Callable[[DiscretePrompt, random.Random], DiscretePrompt]
        self._word_ops: list[tuple[str, Op]] = [
            ("substitute", self.substitute), ("insert", self.insert), ("delete_word", self.delete_word)]
        self._phrase_ops: list[tuple[str, Op]] = [
            ("delete_phrase", self.delete_phrase), ("swap", self.swap), ("add_phrase", self.add_phrase)]

    # ------------------------------------------------------------------ helpers
    def ok(self, prompt: DiscretePrompt) -> bool:
        return prompt.is_valid(self.max_words, self.slots) and (self.fits is None or self.fits(prompt))

    def _valid_or(self, child: DiscretePrompt, parent: DiscretePrompt) -> DiscretePrompt:
        return child if self.ok(child) else parent

    @staticmethod
    def _text_phrases(prompt: DiscretePrompt) -> list[int]:
        return [i for i, p in enumerate(prompt.phrases) if not is_slot(p)]

    @staticmethod
    def _replace(prompt: DiscretePrompt, index: int, phrase: str | None) -> DiscretePrompt:
        phrases = list(prompt.phrases)
        if phrase is None or not phrase.strip():
            del phrases[index]
        else:
            phrases[index] = phrase
        return DiscretePrompt(tuple(phrases))

    @staticmethod
    def _alpha_words(phrase: str) -> list[int]:
        return [j for j, w in enumerate(words(phrase)) if w.strip().isalpha()]

    @staticmethod
    def _cased(word: str, like: str) -> str:
        return word[:1].upper() + word[1:] if like.strip()[:1].isupper() else word

    # ------------------------------------------------------------------ word level
    def substitute(self, prompt: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        """Replace one word by a neighbour in the input-embedding space."""
        spots = [(i, j) for i in self._text_phrases(prompt) for j in self._alpha_words(prompt.phrases[i])]
        if not spots:
            return prompt
        i, j = rng.choice(spots)
        parts = words(prompt.phrases[i])
        near = self.vocabulary.neighbours(parts[j], self.neighbours)
        if not near:
            return prompt
        parts[j] = leading_space(parts[j]) + self._cased(rng.choice(near), parts[j])
        return self._valid_or(self._replace(prompt, i, "".join(parts)), prompt)

    def insert(self, prompt: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        """Insert a word: a neighbour of the word before it, or a frequent vocabulary word."""
        texts = self._text_phrases(prompt)
        if not texts:
            return self.add_phrase(prompt, rng)
        i = rng.choice(texts)
        parts = words(prompt.phrases[i])
        j = rng.randrange(len(parts) + 1)
        anchor = parts[j - 1] if j > 0 else parts[0]
        near = self.vocabulary.neighbours(anchor, self.neighbours) if rng.random() < 0.5 else []
        new = rng.choice(near) if near else self.vocabulary.random_word(rng, self.trigger_top, self.trigger_rows)
        if j == 0:  # the new first word takes over the phrase's separator
            parts = [leading_space(parts[0]) + new, " " + parts[0].lstrip(), *parts[1:]]
        else:
            parts.insert(j, " " + new)
        return self._valid_or(self._replace(prompt, i, "".join(parts)), prompt)

    def delete_word(self, prompt: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        """Delete one word (the phrase goes when it was its only word)."""
        spots = [(i, j) for i in self._text_phrases(prompt) for j in range(len(words(prompt.phrases[i])))]
        if not spots:
            return prompt
        i, j = rng.choice(spots)
        parts = words(prompt.phrases[i])
        sep = leading_space(parts[0])
        del parts[j]
        phrase = (sep + "".join(parts).lstrip()) if parts else None
        return self._valid_or(self._replace(prompt, i, phrase), prompt)

    # ------------------------------------------------------------------ phrase level
    def delete_phrase(self, prompt: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        texts = self._text_phrases(prompt)
        if not texts:
            return prompt
        return self._valid_or(self._replace(prompt, rng.choice(texts), None), prompt)

    def swap(self, prompt: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        """Swap two phrases (either may be an input slot); separators stay where they were."""
        if len(prompt.phrases) < 2:
            return prompt
        a, b = rng.sample(range(len(prompt.phrases)), 2)
        phrases = list(prompt.phrases)
        sep_a, sep_b = leading_space(phrases[a]), leading_space(phrases[b])
        phrases[a], phrases[b] = sep_a + phrases[b].strip(), sep_b + phrases[a].strip()
        return self._valid_or(DiscretePrompt(tuple(phrases)), prompt)

    def add_phrase(self, prompt: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        if not self.phrase_pool:
            return prompt
        phrases = list(prompt.phrases)
        phrases.insert(rng.randrange(len(phrases) + 1), " " + rng.choice(self.phrase_pool).strip())
        return self._valid_or(DiscretePrompt(tuple(phrases)), prompt)

    # ------------------------------------------------------------------ the operators
    def mutate(self, prompt: DiscretePrompt, rng: random.Random) -> tuple[DiscretePrompt, str]:
        """One mutation, word level with probability ``word_level``; returns the child and the op's name."""
        ops = self._word_ops if rng.random() < self.word_level else self._phrase_ops
        name, op = rng.choice(ops)
        return op(prompt, rng), name

    def crossover(self, a: DiscretePrompt, b: DiscretePrompt, rng: random.Random) -> DiscretePrompt:
        """One-point crossover of the phrase lists; falls back to ``a`` if the child is invalid."""
        for _ in range(4):
            cut_a = rng.randrange(len(a.phrases) + 1)
            cut_b = rng.randrange(len(b.phrases) + 1)
            child = DiscretePrompt(a.phrases[:cut_a] + b.phrases[cut_b:])
            if self.ok(child):
                return child
        return a


def phrase_pool(seeds: Sequence[DiscretePrompt], extra: Sequence[str] = GENERIC_PHRASES) -> list[str]:
    """The phrases of the seed prompts and the generic ones, each once, in a fixed order."""
    pool: list[str] = []
    for text in [p for s in seeds for p in s.phrases if not is_slot(p)] + list(extra):
        for phrase in split_phrases(text):
            if phrase.strip() not in pool:
                pool.append(phrase.strip())
    return pool
