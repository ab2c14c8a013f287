"""Input -> target text pairs: generation data, its readers, tasks, splits and in-context prompts.

A classification task has one label per text; a generation task has one target *text* per input
(a question and its answer). A task is a template (where the input goes, what precedes the
target), a pool few-shot pairs are drawn from and a fixed test set, as for the other tasks; few-shot
K means K pairs.

The registered task ``trivia_qa`` reads the question -> answer pairs of chatterbot-corpus's
``english/trivia.yml`` (BSD-3) at run time. User files are CSV, TSV or JSON lines with ``input``
and ``target`` columns (other names with ``--text-column`` / ``--label-column``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from promptlearning.data.fewshot import check_pool_draw
from promptlearning.errors import DataError, UnknownNameError

#: Share of a pair corpus held out as its fixed test set (as for tagged corpora: a few hundred pairs).
TEST_FRACTION = 0.3
MAX_TEST_PAIRS = 1000
#: Seed of the shuffle that picks the fixed test pairs; never changes, or published results would.
TEST_SPLIT_SEED = 0
#: Columns of a user's pair file unless --text-column / --label-column name others.
INPUT_COLUMN, TARGET_COLUMN = "input", "target"
#: Template of a user's pairs when none is given: the input, a line break, the target.
DEFAULT_TEMPLATE = "{text_a}\n"


@dataclass(frozen=True)
class TextPair:
    """One input and the text a model should answer with."""

    input: str
    target: str


@dataclass
class PairData:
    """A generation task: its template, description, pool and fixed test set."""

    name: str
    description: str
    template: str
    pool: list[TextPair] = field(default_factory=list)
    test: list[TextPair] = field(default_factory=list)


# ---------------------------------------------------------------------------- reading
def _cell(path: Path, line: int, value: Any, column: str, flag: str) -> str:
    """A text field: a string (or a number, as YAML and JSON write years), stripped and non-empty."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{path} line {line}: column {column!r} holds {value!r}; make it a text")
    text = str(value).strip()
    if not text:
        raise DataError(f"{path} line {line}: column {column!r} is empty; give every {flag} a text or remove the row")
    return text


def read_pair_file(path: str | Path, input_column: str = INPUT_COLUMN,
                   target_column: str = TARGET_COLUMN) -> list[TextPair]:
    """The pairs of a CSV, TSV or JSONL file; a missing column or an empty cell is a one-line error."""
    from promptlearning.data.user_files import read_records

    path = Path(path)
    pairs = []
    for line, row in read_records(path):
        for column, flag, what in ((input_column, "--text-column", "input"), (target_column, "--label-column", "target")):
            if column not in row:
                shown = ", ".join(repr(c) for c in row) or "none"
                raise DataError(f"{path} line {line} has no column {column!r} (available: {shown}); name the {what} "
                                f"column with {flag}")
        pairs.append(TextPair(_cell(path, line, row[input_column], input_column, "input"),
                              _cell(path, line, row[target_column], target_column, "target")))
    return pairs


def _dedupe(pairs: Iterable[TextPair]) -> list[TextPair]:
    """Pairs in first-seen order, a repeated input kept once (its first target)."""
    seen: set[str] = set()
    out = []
    for pair in pairs:
        if pair.input not in seen:
            seen.add(pair.input)
            out.append(pair)
    return out


def fixed_test_count(n: int) -> int:
    """How many of ``n`` pairs the fixed test set takes: min(1000, 30 %)."""
    return min(MAX_TEST_PAIRS, int(n * TEST_FRACTION))


def build_pair_data(name: str, description: str, template: str, pairs: Iterable[TextPair],
                    test_pairs: Iterable[TextPair] | None = None) -> PairData:
    """A task from pairs: deduplicate, then hold out the fixed test set (or use the given one, removing
    from the pool every pair whose input it holds)."""
    every = _dedupe(pairs)
    if test_pairs is None:
        order = list(range(len(every)))
        random.Random(TEST_SPLIT_SEED).shuffle(order)
        held = set(order[:fixed_test_count(len(every))])
        pool = [p for i, p in enumerate(every) if i not in held]
        test = [p for i, p in enumerate(every) if i in held]
    else:
        test = _dedupe(test_pairs)
        inputs = {p.input for p in test}
        pool = [p for p in every if p.input not in inputs]
    return PairData(name, description, template, pool, test)


def load_pair_files(train_file: str, test_file: str | None = None, *, input_column: str = INPUT_COLUMN,
                    target_column: str = TARGET_COLUMN, description: str | None = None,
                    template: str | None = None) -> PairData:
    """A generation task from the user's files (named after the training file's stem)."""
    pairs = read_pair_file(train_file, input_column, target_column)
    test = read_pair_file(test_file, input_column, target_column) if test_file else None
    return build_pair_data(Path(train_file).stem, description or f"Answer each input as in {Path(train_file).name}.",
                           template or DEFAULT_TEMPLATE, pairs, test)


# ---------------------------------------------------------------------------- registered tasks
@dataclass(frozen=True)
class PairTaskSpec:
    """A registered generation task: its template and where its pairs come from, read at run time."""

    name: str
    description: str
    source: str
    template: str
    read: Callable[[], list[TextPair]]


GENERATION_TASKS: dict[str, PairTaskSpec] = {}


def register_generation_task(spec: PairTaskSpec) -> PairTaskSpec:
    if spec.name in GENERATION_TASKS:
        raise ValueError(f"generation task {spec.name!r} is already registered")
    GENERATION_TASKS[spec.name] = spec
    return spec


def is_generation_task(name: str | None) -> bool:
    return name in GENERATION_TASKS


def generation_task_names() -> list[str]:
    return sorted(GENERATION_TASKS)


@lru_cache(maxsize=4)
def _load(name: str) -> PairData:
    spec = GENERATION_TASKS[name]
    return build_pair_data(spec.name, spec.description, spec.template, spec.read())


def load_generation_task(name: str) -> PairData:
    """A registered generation task (read once per process; callers get their own lists)."""
    if name not in GENERATION_TASKS:
        raise UnknownNameError(f"unknown generation task {name!r}; choose one of: {', '.join(generation_task_names())} "
                               "or give --train-file (CSV or JSONL with input and target columns)")
    data = _load(name)
    return PairData(data.name, data.description, data.template, list(data.pool), list(data.test))


TRIVIA_MEMBER = "chatterbot_corpus/data/english/trivia.yml"


def conversation_pairs(text: str, source: str) -> list[TextPair]:
    """The (first line -> second line) pair of every two-line conversation of a chatterbot-corpus YAML file.

    Entries that are not a list of two texts are skipped: trivia.yml has one, a question and its
    answer run together into one string by an indentation slip."""
    import yaml

    try:
        conversations = (yaml.safe_load(text) or {}).get("conversations") or []
    except yaml.YAMLError as exc:
        raise DataError(f"{source} is not valid YAML ({exc}); the cached package file may be damaged") from None
    pairs = []
    for entry in conversations:
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, (str, int)) for x in entry):
            question, answer = (" ".join(str(x).split()) for x in entry)  # no-break spaces and line breaks: spaces
            if question and answer:
                pairs.append(TextPair(question, answer))
    return pairs


def _read_trivia() -> list[TextPair]:
    from promptlearning.artifacts import read_member

    return conversation_pairs(read_member("chatterbot_corpus", TRIVIA_MEMBER).decode("utf-8"),
                              f"chatterbot-corpus {TRIVIA_MEMBER}")


register_generation_task(PairTaskSpec(
    "trivia_qa", "Answer a short trivia question with a short factual answer.",
    f"chatterbot-corpus==1.3.3 wheel, {TRIVIA_MEMBER} (BSD-3; 260 question -> answer pairs)",
    "Question: {text_a}\nAnswer:", _read_trivia))


# ---------------------------------------------------------------------------- few-shot splits
@dataclass
class PairSplit:
    """A named few-shot split of a generation task: K train pairs, ``dev`` K more, the fixed test set."""

    task: str
    k: int
    seed: int
    train: list[TextPair]
    dev: list[TextPair]
    test: list[TextPair]


def pair_few_shot(data: PairData, k: int, seed: int, dev_k: int | None = None) -> PairSplit:
    """K train and ``dev_k`` (default K) dev pairs, disjoint, drawn by ``random.Random(seed)`` from the pool."""
    if k < 1:
        raise DataError(f"shots must be at least 1 pair (got {k})")
    dev_n = k if dev_k is None else dev_k
    check_pool_draw(data.name, len(data.pool), k, dev_n, "pairs")
    picked = random.Random(seed).sample(range(len(data.pool)), k + dev_n)
    return PairSplit(data.name, k, seed, [data.pool[i] for i in picked[:k]], [data.pool[i] for i in picked[k:]],
                     list(data.test))


# ---------------------------------------------------------------------------- prompts
_SLOTS = re.compile(r"\{text_a\}|\{text_b\}|\[P\d*\]")


def target_separator(template: str) -> str:
    """What joins the prompt and the target: nothing after whitespace, else one space (' Paris')."""
    return "" if template[-1:].isspace() else " "


def demonstration_template(template: str, demonstrations: Sequence[TextPair]) -> str:
    """The fixed in-context prompt: each demonstration written with ``template`` and its target, a blank
    line between them, then ``template`` itself for the input to answer."""
    shown = []
    for pair in demonstrations:
        if _SLOTS.search(pair.input) or _SLOTS.search(pair.target):
            raise DataError(f"demonstration {pair.input[:40]!r} holds a template slot ({{text_a}}, {{text_b}} or [P]); "
                            "remove it from the training data or use fewer --demonstrations")
        shown.append(template.replace("{text_a}", pair.input) + target_separator(template) + pair.target)
    return "".join(s + "\n\n" for s in shown) + template
