"""Few-shot splits and the shared cleaning / fixed test split, on synthetic tasks."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from collections import Counter

import pytest

from promptlearning.data import LMBFF_SEEDS, Example, FewShotSplit, TaskData, few_shot_split, max_k
from promptlearning.data.examples import build_task_data, clean_records, fixed_test_size, normalize_text
from promptlearning.data.fewshot import check_pool_draw
from promptlearning.errors import DataError


def _task(per_class: tuple[int, ...] = (40, 30, 25)) -> TaskData:
    labels = [f"c{i}" for i in range(len(per_class))]
    pool = [Example(f"text {c} {j}", c) for c, n in enumerate(per_class) for j in range(n)]
    return TaskData("synthetic", labels, "Decide the class.", pool, [Example("held out", 0)])


def _digest(split: FewShotSplit) -> str:
    parts = [f"{e.label}:{e.text_a}" for e in split.train] + ["|"] + [f"{e.label}:{e.text_a}" for e in split.dev]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = _task()
    assert _digest(few_shot_split(data, 8, 13)) == _digest(few_shot_split(data, 8, 13))
    assert len({_digest(few_shot_split(data, 8, s)) for s in LMBFF_SEEDS}) == len(LMBFF_SEEDS)


def test_k_per_class_and_disjoint() -> None:
    data = _task()
    split = few_shot_split(data, 5, 42, dev_k=3)
    assert (split.task, split.k, split.seed) == ("synthetic", 5, 42)
    assert Counter(e.label for e in split.train) == {0: 5, 1: 5, 2: 5}
    assert Counter(e.label for e in split.dev) == {0: 3, 1: 3, 2: 3}
    assert not set(split.train) & set(split.dev)
    assert set(split.train) | set(split.dev) <= set(data.pool)
    assert split.test == data.test
    assert [e.label for e in split.train] != sorted(e.label for e in split.train)  # classes interleaved


def test_dev_defaults_to_k_and_may_be_empty() -> None:
    data = _task()
    assert len(few_shot_split(data, 4, 1).dev) == 12
    assert few_shot_split(data, 4, 1, dev_k=0).dev == []


def test_k_too_large_names_class_and_max() -> None:
    data = _task()
    assert max_k(data) == 12 and max_k(data, dev_k=5) == 20
    few_shot_split(data, 12, 13)
    with pytest.raises(DataError, match=r"25 pool examples of class 'c2'.*use --shots <= 12") as err:
        few_shot_split(data, 13, 13)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="use --shots <= 20"):
        few_shot_split(data, 21, 13, dev_k=5)
    with pytest.raises(DataError, match="at least 1"):
        few_shot_split(data, 0, 13)



@pytest.mark.parametrize(("pool", "k", "dev_k", "fix"), [
    (9, 5, 5, "use --shots <= 4"),
    (9, 8, 3, "use --shots <= 6 with --dev-shots 3"),
    (1, 1, 1, "give at least 2 pairs (one or more to train on, as many for dev)"),
    (3, 1, 3, "give at least 4 pairs"),
])
def test_a_too_small_pool_of_whole_items_names_a_shots_that_fits_or_how_many_to_give(
        pool: int, k: int, dev_k: int, fix: str) -> None:
    """Tagged sentences and text pairs are drawn whole, not per class: the fix names a --shots that fits,
    keeping a --dev-shots the user set, and never "--shots <= 0" when the pool is too small for any."""
    if pool >= 2:
        check_pool_draw("toy", pool, 1, 1, "pairs")  # the smallest draw fits: no error
    with pytest.raises(DataError) as err:
        check_pool_draw("toy", pool, k, dev_k, "pairs")
    assert fix in str(err.value) and "<= 0" not in str(err.value) and "\n" not in str(err.value)


_CHILD = """
import hashlib
from promptlearning.data import Example, TaskData, few_shot_split
pool = [Example(f"t{c}-{j}", c) for c in range(3) for j in range(50)]
s = few_shot_split(TaskData("t", ["a", "b", "c"], "d", pool, []), 4, 21)
print(hashlib.sha256(repr([(e.text_a, e.label) for e in s.train + s.dev]).encode()).hexdigest())
"""


def test_split_does_not_depend_on_hash_randomisation() -> None:
    """The same split in this process and in one with another string-hash seed."""
    here: dict[str, str] = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(_CHILD, here)
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == out.getvalue().strip()


def test_cleaning_dedupes_and_drops_conflicts() -> None:
    records = [("  a  b ", "pos"), ("a b", "pos"), ("x", "pos"), ("x", "neg"), ("", "neg"), ("Tom &amp; Jerry\r\n", "neg")]
    cleaned = clean_records(records, ["neg", "pos"])
    assert cleaned == [Example("a b", 1), Example("Tom & Jerry", 0)]
    assert normalize_text("a\x8ab\tc") == "ab c"


def test_fixed_test_split_rule() -> None:
    assert fixed_test_size(100) == 20 and fixed_test_size(10_000) == 1000
    records = [(f"sentence {i}", "pos" if i % 3 else "neg") for i in range(300)]
    a = build_task_data("t", ["neg", "pos"], "d", records)
    b = build_task_data("t", ["neg", "pos"], "d", list(records))
    assert (len(a.pool), len(a.test)) == (240, 60)
    assert a.test == b.test and not set(a.pool) & set(a.test)
    shipped = build_task_data("t", ["neg", "pos"], "d", records[:10], test_records=records[5:12])
    assert len(shipped.pool) == 5 and len(shipped.test) == 7  # overlap removed from the pool
