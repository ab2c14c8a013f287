"""Toy input -> target pairs in the tiny tokenizer's vocabulary ("the movie was good" -> "good movie"),
and a writer for them as the user's JSONL or CSV file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from promptlearning.data.text_pairs import TextPair

ADJECTIVES = ["good", "bad", "great", "boring", "fun", "funny"]
NOUNS = ["movie", "film", "story", "plot", "actor", "phone", "camera"]


def toy_pairs(n: int | None = None) -> list[TextPair]:
    """Every (adjective, noun) pair in a fixed order, or the first ``n``."""
    pairs = [TextPair(f"the {noun} was {adj}", f"{adj} {noun}") for adj in ADJECTIVES for noun in NOUNS]
    return pairs[:n] if n is not None else pairs


def write_pairs(path: Path, pairs: list[TextPair], input_column: str = "input", target_column: str = "target") -> Path:
    """The pairs as JSON lines (``.jsonl``) or a CSV file (``.csv``) with the given column names."""
    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([input_column, target_column])
            writer.writerows([p.input, p.target] for p in pairs)
        return path
    path.write_text("".join(json.dumps({input_column: p.input, target_column: p.target}) + "\n" for p in pairs))
    return path
