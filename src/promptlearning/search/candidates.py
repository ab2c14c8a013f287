"""A readable discrete prompt: a sequence of phrases around the input slot(s).

A template such as ``"Movie review: {text_a}\\nIs this review positive or negative? Answer:"``
is cut into phrases (at sentence punctuation and line breaks) and each phrase into words::

    ("Movie review:", " {text_a}", "\\nIs this review positive or negative?", " Answer:")

The input slots are phrases too, so phrase-level mutations can move the input. Each phrase
keeps its leading whitespace (nothing, a space or a line break), so rendering gives back the
original text exactly. A prompt is *valid* when it holds each input slot exactly once, its
other phrases contain no template syntax (``{``, ``}``, ``[P``), it has at most a given
number of words, and :class:`~promptlearning.data.templates.Template` accepts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from promptlearning.data.templates import Template
from promptlearning.errors import ConfigError

SLOTS = ("{text_a}", "{text_b}")
_SLOT_SPLIT = re.compile(r"(\{text_a\}|\{text_b\})")
# a phrase: optional leading whitespace, then text up to and including sentence punctuation or a line end
_PHRASE = re.compile(r"\s*[^\s][^.?!:;\n]*[.?!:;]*")
# a word: optional leading whitespace, then a run of word characters or of other symbols
_WORD = re.compile(r"\s*(?:[\w'’-]+|[^\w\s]+)")
_FORBIDDEN = ("{", "}", "[P")


def leading_space(text: str) -> str:
    """The whitespace a phrase or word starts with, normalised to '', ' ' or a line break."""
    stripped = text[: len(text) - len(text.lstrip())]
    if not stripped:
        return ""
    return "\n" if "\n" in stripped else " "


def normalise(phrase: str) -> str:
    """One leading separator at most and no trailing whitespace."""
    return leading_space(phrase) + phrase.strip()


def words(phrase: str) -> list[str]:
    """The words of a phrase, each with its leading whitespace; ''.join(words(p)) == p."""
    return _WORD.findall(phrase)


def is_slot(phrase: str) -> bool:
    return phrase.strip() in SLOTS


@dataclass(frozen=True)
class DiscretePrompt:
    """An immutable prompt: phrases in order, input slots among them."""

    phrases: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> DiscretePrompt:
        """Cut a template into phrases; refuses one without the {text_a} input slot."""
        Template.parse(template)  # raises the library's one-line error for a missing {text_a}
        pieces = [p for p in _SLOT_SPLIT.split(template) if p]
        phrases: list[str] = []
        for j, piece in enumerate(pieces):
            if piece in SLOTS:
                before = pieces[j - 1] if j > 0 else ""
                # the whitespace that preceded a slot travels with it
                phrases.append(leading_space(before[len(before.rstrip()):]) + piece)
            else:
                phrases.extend(normalise(p) for p in _PHRASE.findall(piece))
        return cls(tuple(phrases))

    @property
    def template(self) -> str:
        """The template text: phrases joined, a space added where a phrase has no separator."""
        parts = []
        for i, phrase in enumerate(self.phrases):
            body = phrase.strip()
            if i == 0:
                parts.append(body)
            else:
                parts.append((leading_space(phrase) or " ") + body)
        return "".join(parts)

    def word_count(self) -> int:
        return sum(len(words(p)) for p in self.phrases if not is_slot(p))

    def slots(self) -> list[str]:
        return [p.strip() for p in self.phrases if is_slot(p)]

    def problems(self, max_words: int, slots: tuple[str, ...] = ("{text_a}",)) -> list[str]:
        """Why this prompt is invalid (empty when it is valid)."""
        found = self.slots()
        out = [f"needs {s} exactly once" for s in slots if found.count(s) != 1]
        out += [f"has unexpected slot {s}" for s in set(found) - set(slots)]
        for phrase in self.phrases:
            if not is_slot(phrase) and any(bad in phrase for bad in _FORBIDDEN):
                out.append(f"phrase {phrase!r} contains template syntax")
            if not is_slot(phrase) and not phrase.strip():
                out.append("has an empty phrase")
        if self.word_count() > max_words:
            out.append(f"has {self.word_count()} words, more than {max_words}")
        if not out:
            try:
                Template.parse(self.template)
            except ConfigError as exc:
                out.append(str(exc))
        return out

    def is_valid(self, max_words: int, slots: tuple[str, ...] = ("{text_a}",)) -> bool:
        return not self.problems(max_words, slots)


def split_phrases(text: str) -> list[str]:
    """Phrases of free text (for phrase pools), normalised, without template syntax."""
    return [normalise(p) for p in _PHRASE.findall(text) if not any(bad in p for bad in _FORBIDDEN)]


def parse_seeds(templates: list[str], max_words: int) -> list[DiscretePrompt]:
    """Seed prompts from template texts, with one-line errors for an empty list or a bad template."""
    if not templates:
        raise ConfigError("the seed-prompt list is empty; give at least one template with {text_a}, "
                          "e.g. --seed-prompt 'Review: {text_a} Sentiment:' (or omit it for the task's hand-written one)")
    seeds = []
    for text in templates:
        prompt = DiscretePrompt.parse(text)
        slots = tuple(s for s in SLOTS if s in text)
        problems = prompt.problems(max_words, slots)
        if problems:
            raise ConfigError(f"seed prompt {text!r} {problems[0]}; fix it or raise --option max_words=")
        seeds.append(prompt)
    return seeds
