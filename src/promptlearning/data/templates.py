"""Templates: where the input's parts, fixed words and pseudo-token prompts sit.

A template is text with ``{text_a}``, optionally ``{text_b}``, and pseudo-token slots
``[P]`` or ``[Pn]`` (n slots), e.g. ``"[P3] {text_a} [P3] It was"``. Kept on the input side,
apart from the label side (the verbaliser), so either can change alone. Each part is
tokenised on its own so the input can be truncated without cutting the fixed words; the
whitespace before an input slot travels with the input, which keeps byte-level BPE
tokenisations the same as for the whole string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from promptlearning.data.examples import Example
from promptlearning.data.truncation import TruncationCount, keep
from promptlearning.errors import ConfigError

_TOKEN = re.compile(r"\{text_a\}|\{text_b\}|\[P(\d*)\]")


@dataclass(frozen=True)
class Part:
    kind: str  # "literal", "text_a", "text_b" or "pseudo"
    value: str = ""
    count: int = 0


@dataclass(frozen=True)
class Template:
    text: str
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        if "{text_a}" not in text:
            raise ConfigError(f"template {text!r} has no input slot; put {{text_a}} where the input goes, "
                              "e.g. 'Review: {text_a} Sentiment:'")
        parts: list[Part] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                parts.append(Part("literal", text[pos:m.start()]))
            token = m.group(0)
            if token.startswith("[P"):
                n = int(m.group(1) or 1)
                if n < 1:
                    raise ConfigError(f"template slot {token} must hold at least one prompt token, e.g. [P3]")
                parts.append(Part("pseudo", count=n))
            else:
                parts.append(Part(token[1:-1]))
            pos = m.end()
        if pos < len(text):
            parts.append(Part("literal", text[pos:]))
        return cls(text, tuple(_move_spaces(parts)))

    @property
    def num_pseudo(self) -> int:
        return sum(p.count for p in self.parts if p.kind == "pseudo")

    @property
    def uses_text_b(self) -> bool:
        return any(p.kind == "text_b" for p in self.parts)

    def fixed_length(self, tokenizer: Any) -> int:
        """Tokens the template takes whatever the input: special tokens, [P] slots and fixed words."""
        prefix, suffix = special_tokens(tokenizer)
        return len(prefix) + len(suffix) + self.num_pseudo + sum(
            len(tokenize(tokenizer, p.value)) for p in self.parts if p.kind == "literal")

    def render(self, tokenizer: Any, example: Example, max_length: int, truncation: str = "head",
               count: TruncationCount | None = None) -> tuple[list[int], list[int]]:
        """Token ids and, per position, the pseudo-token index it holds (-1 for ordinary tokens).

        Inputs too long for ``max_length`` lose tokens from the longer one first; ``truncation`` says
        which part each keeps, and ``count`` (if given) records what was cut."""
        prefix, suffix = special_tokens(tokenizer)
        lead = {"text_a": _lead(self.parts, "text_a"), "text_b": _lead(self.parts, "text_b")}
        texts = {"text_a": tokenize(tokenizer, lead["text_a"] + example.text_a),
                 "text_b": tokenize(tokenizer, lead["text_b"] + (example.text_b or ""))}
        budget = max_length - self.fixed_length(tokenizer)
        if budget < 1:
            raise ConfigError(f"template {self.text!r} leaves no room for the input within {max_length} tokens; "
                              "raise --max-length or shorten the template")
        before = len(texts["text_a"]) + len(texts["text_b"])
        sizes = {k: len(v) for k, v in texts.items()}
        while sizes["text_a"] + sizes["text_b"] > budget:  # cut the longer input first
            longer = "text_a" if sizes["text_a"] >= sizes["text_b"] else "text_b"
            sizes[longer] -= 1
        texts = {k: keep(v, sizes[k], truncation) for k, v in texts.items()}
        if count is not None:
            count.add(before, sizes["text_a"] + sizes["text_b"])
        ids, slots = list(prefix), [-1] * len(prefix)
        pseudo = 0
        for part in self.parts:
            if part.kind == "space":
                continue  # carried by the input that follows
            if part.kind == "pseudo":
                ids += [0] * part.count  # placeholder ids: their embeddings are replaced
                slots += list(range(pseudo, pseudo + part.count))
                pseudo += part.count
                continue
            piece = tokenize(tokenizer, part.value) if part.kind == "literal" else texts[part.kind]
            ids += piece
            slots += [-1] * len(piece)
        return ids + list(suffix), slots + [-1] * len(suffix)


def _move_spaces(parts: list[Part]) -> list[Part]:
    """Give the whitespace that ends a literal to the input slot that follows it."""
    out: list[Part] = []
    for i, part in enumerate(parts):
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if part.kind == "literal" and nxt is not None and nxt.kind in ("text_a", "text_b"):
            stripped = part.value.rstrip(" ")
            if stripped != part.value:
                if stripped:
                    out.append(Part("literal", stripped))
                out.append(Part("space", " " * (len(part.value) - len(stripped))))
                continue
        out.append(part)
    return out


def _lead(parts: tuple[Part, ...], slot: str) -> str:
    for i, part in enumerate(parts):
        if part.kind == slot and i > 0 and parts[i - 1].kind == "space":
            return parts[i - 1].value
    return ""


def tokenize(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


@lru_cache(maxsize=16)
def _specials(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    plain = tokenize(tokenizer, "hello")
    full = list(tokenizer("hello")["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return tuple(full[:start]), tuple(full[start + len(plain):])
    return (), ()


def special_tokens(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids a tokenizer puts before and after a text ([CLS]/[SEP], BOS, ...), found by probing."""
    return _specials(tokenizer)
