"""Examples, task data, and the cleaning and fixed test split every packaged task shares.

A task is a list of label names, a one-sentence description (the label-description head
and reports read it), a *pool* that few-shot train and dev sets are sampled from, and a
fixed held-out *test* set that is identical on every machine.
"""

from __future__ import annotations

import html
import random
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptlearning.errors import DataError

#: Largest fixed test set carved from a corpus that ships no test split of its own.
MAX_TEST = 1000
#: Share of a corpus held out for test (before the :data:`MAX_TEST` cap).
TEST_FRACTION = 0.2
#: Seed of the shuffle that picks the fixed test set; never changes, or published results would.
TEST_SPLIT_SEED = 0


@dataclass(frozen=True)
class Example:
    """One labelled text (or text pair); ``label`` indexes the task's label names."""

    text_a: str
    label: int
    text_b: str | None = None


@dataclass
class TaskData:
    """A task's labels, description, the pool few-shot sets are drawn from, and its test set."""

    name: str
    labels: list[str]
    description: str
    pool: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)

    def counts(self, part: str = "pool") -> dict[str, int]:
        """Examples per label name in ``part`` ("pool" or "test"), in label order."""
        return label_counts(getattr(self, part), self.labels)

    def copy(self) -> TaskData:
        """A copy whose lists can be changed without touching this one (examples are frozen)."""
        return TaskData(self.name, list(self.labels), self.description, list(self.pool), list(self.test))

    @classmethod
    def from_records(cls, records: Iterable[Any], test: Iterable[Any] | None = None, *, name: str = "task",
                     labels: Sequence[str] | None = None, description: str | None = None,
                     text: str = "text", label: str = "label", text_b: str | None = None) -> TaskData:
        """A task from in-memory records: ``(text, label)`` pairs, ``(text_a, text_b, label)`` triples, or
        mappings with keys ``text``/``label`` (``text_b``; other names by ``text=``, ``label=``, ``text_b=``).

        Labels are the distinct values (sorted, numerically if all are integers) unless ``labels`` is
        given; without ``test`` a fixed part of the records is held out, as for a training file alone."""
        rows = [_record(r, i, text, label, text_b) for i, r in enumerate(records, 1)]
        test_rows = [_record(r, i, text, label, text_b) for i, r in enumerate(test, 1)] if test is not None else None
        if not rows:
            raise DataError("no records; give at least one (text, label) per class")
        names = [str(x) for x in labels] if labels is not None else infer_labels(r[2] for r in rows)
        if len(names) < 2:
            raise DataError(f"only one label ({names}); a classification task needs at least 2")
        index = {n: i for i, n in enumerate(names)}

        def examples(part: list[tuple[str, str | None, str]], where: str) -> list[Example]:
            unknown = sorted({r[2] for r in part} - set(index))
            if unknown:
                raise DataError(f"{where} has label(s) {unknown[:3]} not among {names}; fix them or pass labels=")
            return [Example(a, index[y], b) for a, b, y in part]

        pool = examples(rows, "records")
        if test_rows is None:
            pool, held = split_fixed_test(pool)
        else:
            held = examples(test_rows, "test records")
        text_desc = description or f"Decide which of these labels fits the text: {', '.join(names)}."
        return cls(name=name, labels=names, description=text_desc, pool=pool, test=held)

    @classmethod
    def from_pandas(cls, frame: Any, test: Any = None, *, text: str = "text", label: str = "label",
                    text_b: str | None = None, **kwargs: Any) -> TaskData:
        """A task from a pandas DataFrame (and an optional test DataFrame) with the named columns."""
        def rows(df: Any) -> list[dict[str, Any]]:
            if not hasattr(df, "to_dict") or not hasattr(df, "columns"):
                raise DataError(f"from_pandas needs a pandas DataFrame (got {type(df).__name__}); "
                                "for a list of (text, label) use TaskData.from_records")
            missing = [c for c in (text, label, text_b) if c is not None and c not in df.columns]
            if missing:
                raise DataError(f"the DataFrame has no column {missing[0]!r} (columns: {list(df.columns)}); "
                                "name the columns with text=, label=")
            return list(df.to_dict("records"))

        return cls.from_records(rows(frame), rows(test) if test is not None else None, text=text, label=label,
                                text_b=text_b, **kwargs)

    @classmethod
    def from_dataset(cls, dataset: Any, test: Any = None, *, text: str = "text", label: str = "label",
                     text_b: str | None = None, **kwargs: Any) -> TaskData:
        """A task from a Hugging Face ``datasets.Dataset`` (rows as mappings); a ClassLabel column's names
        become the label names unless ``labels=`` is given."""
        if not hasattr(dataset, "features") or not hasattr(dataset, "column_names"):
            raise DataError(f"from_dataset needs a datasets.Dataset (got {type(dataset).__name__}); "
                            "for a DataFrame use TaskData.from_pandas")
        feature = dataset.features.get(label) if hasattr(dataset.features, "get") else None
        names = getattr(feature, "names", None)
        if names and "labels" not in kwargs:
            kwargs["labels"] = list(names)

        def rows(ds: Any) -> list[dict[str, Any]]:
            out = []
            for row in ds:
                row = dict(row)
                if names and isinstance(row.get(label), int):
                    row[label] = names[row[label]]
                out.append(row)
            return out

        return cls.from_records(rows(dataset), rows(test) if test is not None else None, text=text, label=label,
                                text_b=text_b, **kwargs)


def _record(record: Any, i: int, text: str, label: str, text_b: str | None) -> tuple[str, str | None, str]:
    """(text_a, text_b, label name) of one in-memory record, checked."""
    if isinstance(record, dict):
        missing = [k for k in (text, label, text_b) if k is not None and k not in record]
        if missing:
            raise DataError(f"record {i} has no key {missing[0]!r} (keys: {sorted(record)}); "
                            "name the keys with text=, label=")
        a, b, y = record[text], record[text_b] if text_b else None, record[label]
    elif isinstance(record, (tuple, list)) and len(record) in (2, 3):
        a, b, y = (record[0], None, record[1]) if len(record) == 2 else record
    else:
        raise DataError(f"record {i} is {type(record).__name__}; give (text, label), (text_a, text_b, label) "
                        "or a mapping")
    if not isinstance(a, str) or not a.strip():
        raise DataError(f"record {i} has an empty or non-text text ({a!r}); fill it in or drop the record")
    if y is None or (isinstance(y, float) and y != y) or not str(y).strip():
        raise DataError(f"record {i} has no label ({y!r}); fill it in or drop the record")
    return a.strip(), (str(b).strip() if b is not None else None), str(y).strip()


def infer_labels(values: Iterable[str]) -> list[str]:
    """Distinct label values, sorted: numerically if all are integers, else as strings."""
    distinct = sorted(set(values))
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return distinct


def overlap_key(example: Example) -> tuple[str, str]:
    """What makes two examples the same input: their texts, case-folded, whitespace and entities normalised."""
    return normalize_text(example.text_a).casefold(), normalize_text(example.text_b or "").casefold()


def count_overlap(pool: Iterable[Example], test: Iterable[Example]) -> int:
    """How many test examples have the same (normalised) text as some training example."""
    seen = {overlap_key(e) for e in pool}
    return sum(overlap_key(e) in seen for e in test)


def label_counts(examples: Iterable[Example], labels: Sequence[str]) -> dict[str, int]:
    """Examples per label name, in label order, zeros included."""
    counts = Counter(ex.label for ex in examples)
    return {name: counts.get(i, 0) for i, name in enumerate(labels)}


def normalize_text(text: str) -> str:
    """Packaged-corpus text cleaned the same way everywhere.

    HTML entities are decoded (every corpus here has ``&amp;`` and friends), runs of
    whitespace (including the bare carriage returns some files carry inside fields) become
    one space, and control characters, which only come from mis-decoded bytes, are dropped."""
    text = html.unescape(text)
    if any(unicodedata.category(ch) == "Cc" and not ch.isspace() for ch in text):
        text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join(text.split())


Record = tuple[str, str]  # (text, label name) as a corpus reader yields it, in file order


def clean_records(records: Iterable[Record], labels: Sequence[str]) -> list[Example]:
    """Normalised, deduplicated examples, in first-seen order.

    Empty texts are dropped; an exact duplicate text keeps its first occurrence; a text
    that occurs with two different labels is dropped altogether, since no label for it can
    be trusted. Label names must be in ``labels`` (a reader bug otherwise)."""
    index = {name: i for i, name in enumerate(labels)}
    seen: dict[str, int] = {}
    conflicted: set[str] = set()
    for raw, label_name in records:
        text = normalize_text(raw)
        if not text:
            continue
        label = index[label_name]
        if text in seen and seen[text] != label:
            conflicted.add(text)
        seen.setdefault(text, label)
    return [Example(text, label) for text, label in seen.items() if text not in conflicted]


def fixed_test_size(n: int) -> int:
    """How many of ``n`` examples the fixed test set takes: min(1000, 20 %)."""
    return min(MAX_TEST, int(n * TEST_FRACTION))


def split_fixed_test(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(pool, test): a seeded shuffle of the positions picks the test set.

    ``random.Random`` with an integer seed gives the same sequence on every platform and
    Python version, and the input order is the file order, so the split is the same
    everywhere. Pool and test each keep file order."""
    order = list(range(len(examples)))
    random.Random(TEST_SPLIT_SEED).shuffle(order)
    test_idx = set(order[: fixed_test_size(len(examples))])
    pool = [ex for i, ex in enumerate(examples) if i not in test_idx]
    test = [ex for i, ex in enumerate(examples) if i in test_idx]
    return pool, test


def build_task_data(
    name: str,
    labels: Sequence[str],
    description: str,
    records: Iterable[Record],
    test_records: Iterable[Record] | None = None,
) -> TaskData:
    """TaskData from raw records: clean, dedupe, then split (or use the shipped test split).

    When the corpus ships a test split, any pool text that also occurs in the test split
    is removed from the pool, so that test results never measure memorisation."""
    examples = clean_records(records, labels)
    if test_records is None:
        pool, test = split_fixed_test(examples)
    else:
        test = clean_records(test_records, labels)
        test_texts = {ex.text_a for ex in test}
        pool = [ex for ex in examples if ex.text_a not in test_texts]
    return TaskData(name=name, labels=list(labels), description=description, pool=pool, test=test)
