"""An adapter that serves several tasks, from the command line: `evaluate` and `predict` answer for the task
named with --task, and refuse to guess (they used to answer as the first task, silently)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlearning.cli.loading import load_model
from tests.test_cli import fails, ok

from .meta_toys import toy_tasks  # noqa: F401  (fixture)

QUICK = ["--backbone", "tiny-bert", "--shots", "4", "--max-steps", "2", "--eval-every", "1", "--quiet",
         "--no-baseline", "--max-test", "8"]


@pytest.fixture
def multi(toy_tasks: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:  # noqa: F811
    ok(capsys, "train", "--tasks", "toy_movies,toy_films", "--method", "multitask_prompt", "--option", "num_tokens=3",
       *QUICK, "--output", str(tmp_path / "multi"))
    return tmp_path / "multi" / "best"


def test_evaluate_scores_the_task_it_is_told(multi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(multi), "--task", "toy_films", "--max-test", "8"))
    assert scores["task"] == "toy_films" and scores["n"] == 8
    assert "pass --task NAME" in fails(capsys, "evaluate", "--adapter", str(multi))
    assert "toy_movies, toy_films" in fails(capsys, "evaluate", "--adapter", str(multi), "--task", "toy_phones")
    assert "instead of --tasks" in fails(capsys, "evaluate", "--adapter", str(multi), "--tasks", "toy_films")


def test_predict_answers_for_the_named_task(multi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = ["good film", "awful acting"]
    rows = [json.loads(x) for x in ok(capsys, "predict", "--adapter", str(multi), "--task", "toy_films", "--json",
                                      *texts).splitlines()]
    expected = load_model(str(multi)).predict_proba(texts, task="toy_films")
    for row, probs in zip(rows, expected.tolist(), strict=True):
        assert [row["probabilities"][k] for k in ("negative", "positive")] == pytest.approx(probs, abs=1e-6)
    assert "pass --task NAME" in fails(capsys, "predict", "--adapter", str(multi), *texts)
    assert "does not serve task 'toy_phones'" in fails(capsys, "predict", "--adapter", str(multi), "--task",
                                                       "toy_phones", *texts)
