"""Hand-written prompts: one template per task, written once and never tuned.

They are the fixed baseline that "prompt effectiveness" is measured against, and the
default template of the verbaliser head. Label words default to the label names.
"""

from __future__ import annotations

from collections.abc import Sequence

HANDWRITTEN: dict[str, str] = {
    "mr": "Movie review: {text_a}\nIs this review positive or negative? Answer:",
    "cr": "Product review: {text_a}\nIs this review positive or negative? Answer:",
    "tweets": "Tweet: {text_a}\nIs this tweet positive or negative? Answer:",
    "nyt": "Newspaper editorial: {text_a}\nIs this opinion positive or negative? Answer:",
    "rt": "Critic's quote: {text_a}\nIs this review positive or negative? Answer:",
    "subj": "Sentence: {text_a}\nIs this sentence objective or subjective? Answer:",
    "tweets3": "Tweet: {text_a}\nIs this tweet negative, neutral or positive? Answer:",
    "hedge": "Sentence: {text_a}\nIs this statement certain or uncertain? Answer:",
    "drugs3": "Drug review: {text_a}\nIs this review negative, neutral or positive? Answer:",
}


def handwritten_template(task: str | None, labels: Sequence[str]) -> str:
    """The task's hand-written template, or a generic question over its label names."""
    if task in HANDWRITTEN:
        return HANDWRITTEN[task]
    options = ", ".join(labels[:-1]) + f" or {labels[-1]}" if len(labels) > 1 else labels[0]
    return "Text: {text_a}\nIs this text " + options + "? Answer:"
