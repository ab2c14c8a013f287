"""Generation on the command line: `train` a generator on the user's pairs, `evaluate` it (exact match,
token F1, ROUGE-L, BLEU), `predict` and `generate` with it; every mistake one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlearning.data.text_pairs import TextPair
from tests.pair_toy import toy_pairs, write_pairs
from tests.test_cli import fails, ok

FAST = ["--backbone", "tiny-llama", "--max-steps", "2", "--eval-every", "1", "--quiet", "--shots", "6"]
METRICS = {"exact_match", "token_f1", "rouge_l", "bleu", "n", "max_new_tokens", "inputs_cut", "examples"}


def _train(capsys: pytest.CaptureFixture[str], out: Path, *extra: str) -> Path:
    pairs = write_pairs(out.parent / "pairs.jsonl", toy_pairs())
    printed = ok(capsys, "train", "--train-file", str(pairs), "--head", "language_modeling", "--method", "prefix_tuning",
                 "--option", "num_tokens=2", "--template", "review : {text_a} answer :", "--output", str(out), *FAST,
                 *extra)
    assert "adapter (best on dev) saved to" in printed
    return out / "best"


def test_train_evaluate_predict_generate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    adapter = _train(capsys, tmp_path / "run")
    run = json.loads((tmp_path / "run" / "results.json").read_text())["results"]
    assert {"test_exact_match", "test_rouge_l", "test_bleu", "test_token_f1"} <= set(run)
    test_file = write_pairs(tmp_path / "test.csv", toy_pairs(4))
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(test_file)))
    assert set(scores) >= METRICS and scores["n"] == 4 and scores["max_new_tokens"] == run["max_new_tokens"]
    again = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(test_file)))
    assert again == scores  # greedy: the same answers every time
    lines = ok(capsys, "predict", "--adapter", str(adapter), "the movie was good", "a plot").splitlines()
    assert lines[0] == "answer\ttext" and [line.split("\t")[-1] for line in lines[1:]] == ["the movie was good", "a plot"]
    [row] = [json.loads(x) for x in ok(capsys, "predict", "--adapter", str(adapter), "--json", "a film").splitlines()]
    assert set(row) == {"text", "answer"} and row["text"] == "a film"
    printed = ok(capsys, "generate", "--adapter", str(adapter), "the film was", "--max-new-tokens", "3")
    assert printed.startswith("the film was")
    rows = [json.loads(x) for x in ok(capsys, "generate", "--adapter", str(adapter), "the film was", "a plot",
                                      "--max-new-tokens", "3", "--json").splitlines()]
    assert [r["text"] for r in rows] == ["the film was", "a plot"]
    assert printed.rstrip("\n") == "the film was" + rows[0]["continuation"]  # the same greedy continuation


def test_the_fixed_prompt_baselines_train_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", toy_pairs())
    printed = ok(capsys, "train", "--train-file", str(pairs), "--head", "language_modeling", "--method", "fixed_prompt",
                 "--demonstrations", "3", "--output", str(tmp_path / "icl"), *FAST)
    assert "after 3 demonstrations" in printed and "nothing to train" in printed
    saved = json.loads((tmp_path / "icl" / "best" / "adapter_config.json").read_text())
    assert saved["template"].count("\n\n") == 3


def test_a_generation_task_needs_no_head_flag(capsys: pytest.CaptureFixture[str]) -> None:
    # trivia_qa is a generation task: --head defaults to language_modeling, so the encoder is what is refused
    line = fails(capsys, "train", "--task", "trivia_qa", "--backbone", "tiny-bert", "--quiet")
    assert "is an encoder: use --backbone smollm2-135m" in line


def _files(tmp_path: Path) -> dict[str, str]:
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"input": "a film", "answer": "good"}\n')
    empty = tmp_path / "empty.csv"
    empty.write_text("input,target\nthe film was good,good film\nthe plot was bad,\n")
    long_target = write_pairs(tmp_path / "long.jsonl", [TextPair(p.input, " ".join(["very"] * 50)) for p in toy_pairs()])
    return {"good": str(write_pairs(tmp_path / "good.jsonl", toy_pairs())), "missing": str(missing),
            "empty": str(empty), "long": str(long_target)}


@pytest.mark.parametrize(("argv", "expected"), [
    (["--train-file", "{missing}", "--head", "language_modeling"], "no column 'target'"),
    (["--train-file", "{empty}", "--head", "language_modeling"], "line 3: column 'target' is empty"),
    (["--train-file", "{long}", "--head", "language_modeling", "--max-length", "30"],
     "leaving no room for its input within --max-length 30; raise --max-length"),
    (["--train-file", "{good}", "--head", "language_modeling", "--text-column", "question"], "no column 'question'"),
    (["--train-file", "{good}", "--head", "language_modeling", "--backbone", "tiny-bert"], "is an encoder"),
    (["--train-file", "{good}", "--head", "language_modeling", "--demonstrations", "9"], "more pairs than the 6"),
    (["--train-file", "{good}", "--head", "language_modeling", "--text-b-column", "x"], "drop --text-b-column"),
    (["--task", "mr", "--head", "language_modeling"], "it has no target texts"),
    (["--task", "mr", "--demonstrations", "2"], "--demonstrations writes training pairs"),
    (["--task", "trivia_qa", "--head", "classification"], "use --head language_modeling"),
    (["--tasks", "trivia_qa,mr"], "one task at a time"),
])
def test_generation_mistakes_are_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 argv: list[str], expected: str) -> None:
    files = _files(tmp_path)
    args = [a.format(**files) for a in argv]
    line = fails(capsys, "train", *FAST, *args)
    assert expected in line


def test_evaluating_a_generator_on_your_data_needs_the_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    adapter = _train(capsys, tmp_path / "run")
    assert "pass --test-file" in fails(capsys, "evaluate", "--adapter", str(adapter))
    assert "--split dev is drawn from the training data" in fails(
        capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(tmp_path / "pairs.jsonl"), "--split", "dev")
    dev = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--train-file", str(tmp_path / "pairs.jsonl"),
                        "--split", "dev"))
    assert dev["split"] == "dev" and dev["n"] == 6
    assert "drop --text-b-column" in fails(capsys, "predict", "--adapter", str(adapter), "--file",
                                           str(tmp_path / "pairs.jsonl"), "--text-column", "input",
                                           "--text-b-column", "target")
