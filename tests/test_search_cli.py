"""`promptlearning search ...` end to end on the tiny Llama, and every bad input: one line, exit 2."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from promptlearning.cli.main import main

from .conftest import toy_examples

WORDS = "{neg: [bad], pos: [good]}"


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for e in toy_examples(12, seed=7):
            writer.writerow([e.text_a, ["neg", "pos"][e.label]])
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        return code, "", ""
    out, _ = capsys.readouterr()
    return code, out, err.getvalue()


def common(toy_file: Path, *extra: str) -> list[str]:
    return ["--train-file", str(toy_file), "--shots", "4", "--backbone", "tiny-llama", "--label-words", WORDS,
            "--quiet", *extra]


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_strategies_lists_every_strategy_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "search", "strategies")
    assert code == 0
    for name in ("evolution", "rl", "cma_es", "hybrid", "population", "num_words", "dim"):
        assert name in out


@pytest.mark.parametrize(("strategy", "options"), [("evolution", ["--option", "population=4"]),
                                                   ("rl", ["--option", "samples=4", "--option", "num_words=2"]),
                                                   ("cma_es", ["--option", "dim=3", "--option", "popsize=4"])])
def test_search_runs_saves_the_best_prompt_and_lists_the_best(capsys: pytest.CaptureFixture[str], toy_file: Path,
                                                               tmp_path: Path, strategy: str, options: list[str]) -> None:
    out_dir = tmp_path / strategy
    argv = ["search", strategy, *common(toy_file, "--max-forward-passes", "120", "--output", str(out_dir),
                                        "--seed-prompt", "Review: {text_a} It was"), *options]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    results = json.loads((out_dir / "results.json").read_text())["results"]
    assert results["forwards"] <= 120 and results["evaluations"] >= 4
    assert "best prompts:" in out and "generation 1:" not in out  # --quiet: the summary only
    adapter = json.loads((out_dir / "best" / "adapter_config.json").read_text())
    if strategy != "cma_es":
        assert adapter["template"] == results["best_prompt"] and "{text_a}" in results["best_prompt"]
    assert adapter["extra"]["best_prompt"] == results["best_prompt"]
    assert len((out_dir / "journal.jsonl").read_text().splitlines()) == results["evaluations"]
    # the saved best prompt classifies, and `--resume` of a finished search gives the same answer
    code, out, _ = run(capsys, "predict", "--adapter", str(out_dir / "best"), "great movie")
    assert code == 0 and out.splitlines()[1].split("\t")[0] in ("neg", "pos")  # below the header
    code, _, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    again = json.loads((out_dir / "results.json").read_text())["results"]
    assert again["best_prompt"] == results["best_prompt"] and again["forwards"] == results["forwards"]
    journal = (out_dir / "journal.jsonl").read_bytes()
    code, _, err = run(capsys, *argv)  # the same command without --resume: the finished search is kept
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    assert (out_dir / "journal.jsonl").read_bytes() == journal


def test_search_prints_the_best_prompts(capsys: pytest.CaptureFixture[str], toy_file: Path) -> None:
    argv = ["search", "evolution", *common(toy_file, "--max-forward-passes", "80", "--option", "population=4")]
    argv.remove("--quiet")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "best prompt:" in out and "best prompts:" in out and "  1. acc" in out and "test accuracy" in out


def test_hybrid_from_a_search(capsys: pytest.CaptureFixture[str], toy_file: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "search", "evolution", *common(toy_file, "--max-forward-passes", "60", "--output",
                                                               str(tmp_path / "evo"), "--option", "population=4"))
    assert code == 0, err
    code, out, err = run(capsys, "search", "hybrid", "--from", str(tmp_path / "evo"), "--train-file", str(toy_file),
                         "--shots", "4", "--max-steps", "2", "--eval-every", "1", "--quiet", "--no-baseline",
                         "--output", str(tmp_path / "hyb"))
    assert code == 0, err
    found = json.loads((tmp_path / "evo" / "results.json").read_text())["results"]["best_prompt"]
    adapter = json.loads((tmp_path / "hyb" / "best" / "adapter_config.json").read_text())
    assert adapter["method"] == "p_tuning" and adapter["method_config"]["encoder"] == "none"
    assert adapter["template"].count("[P") >= 1 and "soft template" in out and repr(found) in out



def test_hybrid_takes_the_search_split_unless_told(capsys: pytest.CaptureFixture[str], toy_file: Path,
                                                   tmp_path: Path) -> None:
    code, _, err = run(capsys, "search", "evolution", *common(toy_file, "--max-forward-passes", "60", "--output",
                                                               str(tmp_path / "evo"), "--option", "population=4",
                                                               "--data-seed", "21"))
    assert code == 0, err
    searched = json.loads((tmp_path / "evo" / "search_config.json").read_text())["data"]
    code, out, err = run(capsys, "search", "hybrid", "--from", str(tmp_path / "evo"), "--max-steps", "1",
                         "--quiet", "--no-baseline", "--output", str(tmp_path / "hyb"))
    assert code == 0, err
    assert f"shots {searched['shots']}" in out and "data-seed 21" in out and "train-file" in out
    run_cfg = json.loads((tmp_path / "hyb" / "results.json").read_text())["config"]["data"]
    curve = json.loads((tmp_path / "hyb" / "results.json").read_text())["results"]["dev_curve"]
    assert curve[0][0] == 0  # the discrete prompt's own dev score competes for best-on-dev
    assert (run_cfg["shots"], run_cfg["data_seed"], run_cfg["train_file"]) == (
        searched["shots"], 21, searched["train_file"])
    code, out, err = run(capsys, "search", "hybrid", "--from", str(tmp_path / "evo"), "--data-seed", "5",
                         "--max-steps", "1", "--quiet", "--no-baseline", "--output", str(tmp_path / "hyb2"))
    assert code == 0, err
    assert json.loads((tmp_path / "hyb2" / "results.json").read_text())["config"]["data"]["data_seed"] == 5  # told

# ---------------------------------------------------------------------------- bad input
def test_empty_seed_prompt_list(capsys: pytest.CaptureFixture[str], toy_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "seeds.txt"
    empty.write_text("\n\n")
    line = fails(capsys, "search", "evolution", *common(toy_file, "--seed-prompts-file", str(empty)))
    assert "seed-prompt list is empty" in line
    config = tmp_path / "search.yaml"
    config.write_text("seed_prompts: []\n")
    assert "seed-prompt list is empty" in fails(capsys, "search", "rl", *common(toy_file, "--config", str(config)))


def test_template_without_input_slot(capsys: pytest.CaptureFixture[str], toy_file: Path) -> None:
    line = fails(capsys, "search", "evolution", *common(toy_file, "--seed-prompt", "Review: It was"))
    assert "no input slot" in line and "{text_a}" in line
    line = fails(capsys, "search", "hybrid", "--prompt", "Review: it was", "--train-file", str(toy_file),
                 "--backbone", "tiny-llama", "--label-words", WORDS, "--shots", "4", "--quiet")
    assert "no input slot" in line


@pytest.mark.parametrize("strategy", ["evolution", "rl", "cma_es"])
def test_budget_too_small_for_one_generation(capsys: pytest.CaptureFixture[str], toy_file: Path, strategy: str) -> None:
    line = fails(capsys, "search", strategy, *common(toy_file, "--max-forward-passes", "20"))
    assert "too small for one generation" in line and "--max-forward-passes" in line


def test_old_budget_flag_still_works_with_a_note(capsys: pytest.CaptureFixture[str], toy_file: Path) -> None:
    """`--budget` was renamed `--max-forward-passes`: for one release it still sets the same option."""
    code, _, err = run(capsys, "search", "evolution", *common(toy_file, "--budget", "20"))
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[0] == ("note: --budget is deprecated and will be removed in the next release; "
                        "use --max-forward-passes")
    assert "budget 20 forward passes is too small" in lines[1]  # the old spelling set the new option


def test_forward_passes_from_the_config_file(capsys: pytest.CaptureFixture[str], toy_file: Path,
                                             tmp_path: Path) -> None:
    """The file key stays `budget` (stored search configs use it); `max_forward_passes` is accepted too."""
    config = tmp_path / "search.yaml"
    for key in ("budget", "max_forward_passes"):
        config.write_text(f"{key}: 21\n")
        line = fails(capsys, "search", "evolution", *common(toy_file, "--config", str(config)))
        assert "budget 21 forward passes is too small" in line
        # a flag overrides the file
        line = fails(capsys, "search", "evolution", *common(toy_file, "--config", str(config),
                                                            "--max-forward-passes", "22"))
        assert "budget 22 forward passes" in line


def test_lm_head_method_on_an_encoder(capsys: pytest.CaptureFixture[str], toy_file: Path) -> None:
    argv = common(toy_file)
    argv[argv.index("tiny-llama")] = "tiny-bert"
    line = fails(capsys, "search", "evolution", *argv)
    assert "needs an LM head" in line and "tiny-bert" in line


def test_head_with_trained_parameters(capsys: pytest.CaptureFixture[str], toy_file: Path) -> None:
    argv = common(toy_file, "--head", "classification")
    del argv[argv.index("--label-words"):argv.index("--label-words") + 2]  # the classification head takes none
    line = fails(capsys, "search", "rl", *argv)
    assert "trained parameters" in line


@pytest.mark.parametrize("words", ["{neg: [bad], pos: ['']}", "{neg: [bad], pos: ['☃']}"])
def test_label_words_the_tokenizer_cannot_score(capsys: pytest.CaptureFixture[str], toy_file: Path,
                                                words: str) -> None:
    argv = common(toy_file)
    argv[argv.index(WORDS)] = words
    assert "cannot be scored" in fails(capsys, "search", "cma_es", *argv)


def test_unknown_option_and_strategy(capsys: pytest.CaptureFixture[str], toy_file: Path, tmp_path: Path) -> None:
    assert "population" in fails(capsys, "search", "evolution", *common(toy_file, "--option", "popsize=3"))
    assert "elite" in fails(capsys, "search", "evolution", *common(toy_file, "--option", "elite=9"))
    assert "--resume" in fails(capsys, "search", "rl", *common(toy_file, "--resume", "--output",
                                                                  str(tmp_path / "none")))
    code, _, _ = run(capsys, "search", "annealing")
    assert code != 0
