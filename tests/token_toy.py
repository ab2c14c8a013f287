"""A toy tagged corpus in memory (tiny-vocabulary words, a word per tag class) and writers for its files.

``zebra`` is outside the tiny tokenizer's vocabulary, so it splits into five sub-tokens: the corpus
always holds words whose later sub-tokens must carry no label.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = {"DT": ["the", "a", "this"], "RB": ["very", "really", "so"], "JJ": ["good", "bad", "great", "boring"],
         "NN": ["movie", "film", "story", "plot", "zebra"], "VBZ": ["is", "was"]}
Sentence = tuple[list[str], list[str]]


def toy_sentences(n: int = 40, seed: int = 0) -> list[Sentence]:
    """``n`` distinct-ish sentences: DT (RB) JJ NN VBZ (RB) JJ, tags fixed by the word."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pattern = ["DT", *(["RB"] if rng.random() < 0.5 else []), "JJ", "NN", "VBZ",
                   *(["RB"] if rng.random() < 0.5 else []), "JJ"]
        out.append(([rng.choice(WORDS[t]) for t in pattern], pattern))
    return out


def bio_sentences(n: int = 40, seed: int = 0) -> list[Sentence]:
    """Entity-tagged toy sentences: ``the great film`` is a MOVIE span, ``zebra`` a one-word ANIMAL span."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(["i", "you", "he", "she", "they", "we"]), rng.choice(["love", "hate", "like", "enjoy"])]
        tags = ["O", "O"]
        if rng.random() < 0.5:
            words += ["the", rng.choice(["great", "bad"]), "film"]
            tags += ["O", "B-MOVIE", "I-MOVIE"]
        else:
            words += ["a", "zebra"]
            tags += ["O", "B-ANIMAL"]
        out.append((words, tags))
    return out


def write_word_tag(path: Path, sentences: list[Sentence]) -> Path:
    path.write_text("".join(" ".join(f"{w}/{t}" for w, t in zip(ws, ts, strict=True)) + "\n" for ws, ts in sentences))
    return path


def write_conll(path: Path, sentences: list[Sentence], middle: str | None = None) -> Path:
    """CoNLL lines ``word [middle] tag``, a blank line between sentences."""
    lines = []
    for words, tags in sentences:
        lines += [f"{w} {middle} {t}" if middle else f"{w}\t{t}" for w, t in zip(words, tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path
