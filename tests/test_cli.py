"""The command line, in-process on the tiny backbone: every command end to end, and every
mistake a user can make answered by one line starting with ``error:`` and a non-zero exit.

Runs are tiny (4 shots per class, 4 steps) so each command takes well under a second.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptlearning.cli.main import build_parser, main

POSITIVE = ["great movie", "i love this film", "best story", "fun and funny", "good acting", "really enjoy it"]
NEGATIVE = ["awful film", "boring plot", "worst movie", "bad acting", "i hate this", "so boring"]
FAST = ["--backbone", "tiny-bert", "--max-steps", "4", "--eval-every", "2", "--quiet", "--shots", "4"]
TASK_NAMES = ["cr", "drugs3", "hedge", "mr", "nyt", "rt", "subj", "tweets", "tweets3"]


# ---------------------------------------------------------------------------- helpers
def _rows(n_per_class: int = 20, seed: int = 0, labels: tuple[str, str] = ("neg", "pos")) -> list[tuple[str, str]]:
    """Short sentences from the tiny vocabulary: 16 pool + 4 test examples per class at 20."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_per_class):
        out.append((f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", labels[1]))
        out.append((f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", labels[0]))
    return out


def write_delimited(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]], keys: tuple[str, str] = ("text", "label")) -> Path:
    path.write_text("".join(json.dumps({keys[0]: t, keys[1]: y}) + "\n" for t, y in rows))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; a Python exception escaping ``main`` is a failure in itself."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # the point is to report any leak
        capsys.readouterr()
        pytest.fail(f"`promptlearning {' '.join(argv)}` raised {type(exc).__name__}: {exc} "
                    "(a traceback, not a one-line error)")
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, f"`promptlearning {' '.join(argv)}` exited {code}: {err.strip()}"
    return out


def _all_flags() -> set[str]:
    """Every flag of every subcommand (a message may point to another command's flag)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {flag for p in sub.choices.values() for flag in p._option_string_actions}  # type: ignore[attr-defined]


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Assert the command fails with exactly one stderr line ``error: ...`` and return it.

    Any ``--flag`` the message suggests must be a flag the CLI really has."""
    code, out, err = run(capsys, *argv)
    assert code != 0, f"`promptlearning {' '.join(argv)}` succeeded; expected a one-line error"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {err!r}"
    assert lines[0].startswith("error: "), lines[0]
    suggested = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", lines[0]))
    unknown = suggested - _all_flags()
    assert not unknown, f"the message names flag(s) the CLI does not have: {sorted(unknown)}: {lines[0]}"
    return lines[0]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    write_delimited(d / "train.csv", _rows())
    write_delimited(d / "train.tsv", _rows(seed=1))
    write_jsonl(d / "reviews.jsonl", _rows(seed=2), keys=("review", "stars"))
    return d


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run (P-tuning v2, the default method) to predict, evaluate and damage."""
    out = tmp_path_factory.mktemp("runs") / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(out)])
    assert code == 0, f"the shared training run failed: {err.getvalue().strip()}"
    return out


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def adapter_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained / "best", tmp_path / "adapter"))


# ---------------------------------------------------------------------------- listings
def test_tasks_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "tasks", "--no-sizes")
    sentence, rest = out.split("Tagging tasks:")
    tagging, generation = rest.split("Generation tasks:")
    names = [line.split()[0] for line in sentence.splitlines() if line and not line.startswith(" ")]
    assert set(TASK_NAMES) <= set(names) and names == sorted(names)
    assert "labels: negative, positive" in out and "objective, subjective" in out
    tagged = [line.split()[0] for line in tagging.splitlines()[1:] if line and not line.startswith(" ")]
    assert tagged == ["pos_oanc", "pos_wsj"] and "K counts sentences" in tagging
    generating = [line.split()[0] for line in generation.splitlines()[1:] if line and not line.startswith(" ")]
    assert generating == ["trivia_qa"] and "K counts pairs" in generation


def test_backbones_lists_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "backbones")
    for name in ("minilm-l6", "tiny-bert", "tiny-llama"):
        assert re.search(rf"^{name}\s", out, re.M), name
    lines = [line for line in out.splitlines() if line and not line.startswith("Any ")]
    # where the text after the name (or after the indent of a facts line) begins
    starts = {len(line) - len(line[len(line) - len(line.lstrip()) or len(line.split()[0]):].lstrip()) for line in lines}
    assert len(starts) == 1, "every description starts in the same column"
    assert "0.0 GiB" not in out and "float32 87 MiB" in out  # minilm-l6's 23M weights, not "0.0 GiB"


def test_methods_lists_methods_and_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "methods")
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert {"prompt_tuning", "p_tuning_v2", "linear_probe", "finetune"} <= set(names)
    assert "--option num_tokens=" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code != 0 and "usage: promptlearning" in out


# ---------------------------------------------------------------------------- train, predict, evaluate
def test_train_writes_a_run_directory(trained: Path) -> None:
    assert (trained / "best" / "adapter_config.json").is_file()
    assert (trained / "best" / "adapter_model.safetensors").is_file()
    assert (trained / "checkpoint").is_dir() and (trained / "metrics.jsonl").is_file()
    results = json.loads((trained / "results.json").read_text())["results"]
    assert results["steps"] == 4 and results["method"] == "p_tuning_v2" and results["backbone"] == "tiny-bert"
    assert 0.0 <= results["test_accuracy"] <= 1.0
    config = json.loads((trained / "best" / "adapter_config.json").read_text())
    assert config["labels"] == ["neg", "pos"] and config["backbone"]["name"] == "tiny-bert"


def test_predict_texts(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    out = ok(capsys, "predict", "--adapter", str(trained / "best"), "great movie", "so boring")
    header, *lines = out.strip().splitlines()
    assert header.split("\t") == ["label", "probability", "text"] and len(lines) == 2
    for line, text in zip(lines, ["great movie", "so boring"], strict=True):
        label, prob, echoed = line.split("\t")
        assert label in ("neg", "pos") and 0.5 <= float(prob) <= 1.0 and echoed == text


def test_predict_from_file_and_as_json(capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text("great movie\n\nawful film\n")
    out = ok(capsys, "predict", "--adapter", str(trained / "best"), "--file", str(inputs), "--json")
    records = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["text"] for r in records] == ["great movie", "awful film"]  # the blank line is skipped
    for r in records:
        assert set(r["probabilities"]) == {"neg", "pos"}
        assert abs(sum(r["probabilities"].values()) - 1.0) < 1e-5
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_predict_from_stdin(capsys: pytest.CaptureFixture[str], trained: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("great movie\nawful film\n"))
    out = ok(capsys, "predict", "--adapter", str(trained / "best"))
    assert len(out.strip().splitlines()) == 3  # the header and two inputs


def test_predict_gives_the_same_answer_as_the_trained_run(capsys: pytest.CaptureFixture[str],
                                                          trained: Path) -> None:
    first = ok(capsys, "predict", "--adapter", str(trained / "best"), "--json", "good acting")
    again = ok(capsys, "predict", "--adapter", str(trained / "best"), "--backbone", "tiny-bert", "--json",
               "good acting")
    assert json.loads(first) == json.loads(again)


def test_evaluate_on_the_training_file(capsys: pytest.CaptureFixture[str], trained: Path, data: Path) -> None:
    out = ok(capsys, "evaluate", "--adapter", str(trained / "best"), "--train-file", str(data / "train.csv"))
    scores = json.loads(out)
    assert scores["split"] == "test" and scores["n"] == 8 and 0.0 <= scores["accuracy"] <= 1.0
    results = json.loads((trained / "results.json").read_text())["results"]
    assert scores["accuracy"] == results["test_accuracy"]  # the same number train printed
    out = ok(capsys, "evaluate", "--adapter", str(trained / "best"), "--train-file", str(data / "train.csv"),
             "--split", "dev", "--shots", "4")
    assert json.loads(out)["n"] == 8


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_train_on_tsv_and_jsonl_with_named_columns(capsys: pytest.CaptureFixture[str], data: Path,
                                                   tmp_path: Path, fmt: str) -> None:
    if fmt == "tsv":
        argv = ["--train-file", str(data / "train.tsv")]
    else:
        argv = ["--train-file", str(data / "reviews.jsonl"), "--text-column", "review", "--label-column", "stars"]
    ok(capsys, "train", *argv, *FAST, "--method", "prompt_tuning", "--option", "num_tokens=2",
       "--output", str(tmp_path / "out"))
    assert json.loads((tmp_path / "out/best/adapter_config.json").read_text())["labels"] == ["neg", "pos"]


def test_train_from_yaml_and_flags_override_it(capsys: pytest.CaptureFixture[str], data: Path,
                                               tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "train_file": str(data / "train.csv"), "shots": 4, "backbone": "tiny-bert", "method": "prompt_tuning",
        "method_options": {"num_tokens": 2, "init": "random"},
        "train": {"max_steps": 6, "eval_every": 2, "quiet": True, "seed": 7},
        "output_dir": str(tmp_path / "from_yaml"),
    }))
    ok(capsys, "train", "--config", str(config), "--max-steps", "2", "--output", str(tmp_path / "from_flags"),
       "--option", "num_tokens=3")
    assert not (tmp_path / "from_yaml").exists()
    saved = json.loads((tmp_path / "from_flags/results.json").read_text())
    assert saved["results"]["steps"] == 2 and saved["results"]["method"] == "prompt_tuning"
    assert saved["config"]["train"]["seed"] == 7 and saved["config"]["train"]["max_steps"] == 2
    assert saved["config"]["method_options"] == {"num_tokens": 3, "init": "random"}
    adapter = json.loads((tmp_path / "from_flags/best/adapter_config.json").read_text())
    assert adapter["method_config"]["num_tokens"] == 3 and adapter["method_config"]["init"] == "random"


def test_option_sets_a_method_option(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    ok(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", "num_tokens=3",
       "--output", str(tmp_path / "out"))
    adapter = json.loads((tmp_path / "out/best/adapter_config.json").read_text())
    assert adapter["method"] == "p_tuning_v2" and adapter["method_config"]["num_tokens"] == 3
    prompts = [t for k, t in load_file(str(tmp_path / "out/best/adapter_model.safetensors")).items()
               if k.startswith("method.")]
    assert prompts and all(t.shape[-2] == 3 for t in prompts)  # (layers, P, H)


# ---------------------------------------------------------------------------- resume
def test_resume_a_finished_run_is_a_no_op(capsys: pytest.CaptureFixture[str], run_copy: Path, data: Path) -> None:
    before = json.loads((run_copy / "results.json").read_text())["results"]
    best = (run_copy / "best/adapter_model.safetensors").read_bytes()
    ok(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(run_copy), "--resume")
    after = json.loads((run_copy / "results.json").read_text())["results"]
    for key in ("steps", "best_step", "dev_accuracy", "test_accuracy", "dev_curve"):
        assert after[key] == before[key], key
    assert (run_copy / "best/adapter_model.safetensors").read_bytes() == best


def test_resume_with_other_settings_is_refused(capsys: pytest.CaptureFixture[str], run_copy: Path,
                                               data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--lr", "0.5",
                "--output", str(run_copy), "--resume")
    assert "other settings" in msg


def test_resume_without_a_checkpoint(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(tmp_path / "new"),
                "--resume")
    assert "no checkpoint" in msg and "--resume" in msg


def test_resume_without_output(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--resume")
    assert "--output" in msg


# ---------------------------------------------------------------------------- names and options
def test_unknown_task_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    msg = fails(capsys, "train", "--task", "nope", *FAST)
    assert "'nope'" in msg and all(name in msg for name in TASK_NAMES)


def test_unknown_method(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--method", "nope")
    assert "'nope'" in msg and "p_tuning_v2" in msg and "prompt_tuning" in msg


def test_unknown_backbone(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--backbone", "nope")
    assert "'nope'" in msg and "minilm-l6" in msg and "tiny-bert" in msg


def test_prompt_longer_than_the_backbone_allows(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", "num_tokens=500")
    assert "500" in msg and "tiny-bert" in msg


def test_unknown_option_key_lists_the_valid_ones(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", "bogus=1")
    assert "bogus" in msg and "num_tokens" in msg


def test_option_without_a_value(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", "num_tokens")
    assert "KEY=VALUE" in msg


def test_out_of_range_option(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", "num_tokens=0")
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", "layers=[7]")
    assert "[7]" in msg and "0..1" in msg


@pytest.mark.parametrize("option", ["num_tokens=abc", "layers=abc", "init_std=abc"])
def test_wrongly_typed_option(capsys: pytest.CaptureFixture[str], data: Path, option: str) -> None:
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--option", option)
    assert option.split("=")[0] in msg


def test_unknown_yaml_key(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"train_file: {data / 'train.csv'}\nbogus_key: 1\n")
    assert "bogus_key" in fails(capsys, "train", "--config", str(config), *FAST)
    config.write_text("train: {bogus: 1}\n")
    assert "bogus" in fails(capsys, "train", "--config", str(config), *FAST)


def test_bad_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("train: [unclosed\n")
    assert "YAML" in fails(capsys, "train", "--config", str(config), *FAST)
    config.write_text("- a\n- b\n")
    assert "mapping" in fails(capsys, "train", "--config", str(config), *FAST)
    assert "does not exist" in fails(capsys, "train", "--config", str(tmp_path / "none.yaml"), *FAST)


@pytest.mark.parametrize("content", ["shots: abc\n", "max_length: abc\n", "method_options: [1, 2]\n",
                                     "train: 5\n"])
def test_wrongly_typed_yaml_values(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path,
                                   content: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"train_file: {data / 'train.csv'}\nbackbone: tiny-bert\nshots: 4\n{content}")
    msg = fails(capsys, "train", "--config", str(config), "--max-steps", "4", "--quiet")
    assert content.split(":")[0] in msg


# ---------------------------------------------------------------------------- data files
def test_missing_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    msg = fails(capsys, "train", "--train-file", str(tmp_path / "nope.csv"), *FAST)
    assert "nope.csv" in msg


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    msg = fails(capsys, "train", "--train-file", str(path), *FAST)
    assert "empty.csv" in msg


def test_malformed_jsonl(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", _rows())
    path.write_text(path.read_text() + "{not json\n")
    msg = fails(capsys, "train", "--train-file", str(path), *FAST)
    assert "bad.jsonl line 41" in msg and "JSON" in msg


@pytest.mark.parametrize(("flag", "fmt"), [("--text-column", "csv"), ("--label-column", "csv"),
                                           ("--text-column", "jsonl"), ("--label-column", "jsonl")])
def test_missing_named_column_names_the_flag(capsys: pytest.CaptureFixture[str], data: Path, flag: str,
                                             fmt: str) -> None:
    path = data / ("train.csv" if fmt == "csv" else "reviews.jsonl")
    argv = ["--text-column", "review", "--label-column", "stars"] if fmt == "jsonl" else []
    msg = fails(capsys, "train", "--train-file", str(path), *FAST, *argv, flag, "missing_col")
    assert "'missing_col'" in msg and flag in msg


def test_label_only_in_the_test_file(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    test = write_delimited(tmp_path / "test.csv", [("great movie", "pos"), ("awful film", "neutral")])
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), "--test-file", str(test), *FAST)
    assert "'neutral'" in msg and "test.csv line 3" in msg


def test_more_shots_than_a_class_has(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    # 16 pool examples per class: 8 train + 8 dev is the most a split can take (the last --shots wins)
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--shots", "9")
    assert "'neg'" in msg and "8" in msg and "--shots" in msg


def test_only_one_class(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_delimited(tmp_path / "one.csv", [(t, "pos") for t, _ in _rows()])
    msg = fails(capsys, "train", "--train-file", str(path), *FAST)
    assert "one class" in msg


def test_evaluate_on_a_task_with_other_labels(capsys: pytest.CaptureFixture[str], trained: Path,
                                              tmp_path: Path) -> None:
    other = write_delimited(tmp_path / "other.csv", _rows(labels=("bad", "good")))
    msg = fails(capsys, "evaluate", "--adapter", str(trained / "best"), "--train-file", str(other))
    assert "labels" in msg


# ---------------------------------------------------------------------------- adapters
def test_evaluate_a_user_file_adapter_without_its_file(capsys: pytest.CaptureFixture[str],
                                                       trained: Path) -> None:
    # the adapter records the task "train" (the file's stem), which is no registered task
    msg = fails(capsys, "evaluate", "--adapter", str(trained / "best"))
    assert "--test-file" in msg  # a labelled file alone is enough


def test_adapter_directory_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    msg = fails(capsys, "predict", "--adapter", str(tmp_path / "nope"), "great movie")
    assert "does not exist" in msg
    fails(capsys, "evaluate", "--adapter", str(tmp_path / "nope"), "--task", "mr")


@pytest.mark.parametrize(("file", "content"), [
    ("adapter_model.safetensors", b"garbage"),
    ("adapter_model.safetensors", None),
    ("adapter_config.json", b"{garbage"),
    ("adapter_config.json", b"[1, 2]"),
    ("adapter_config.json", None),
])
def test_adapter_directory_corrupt(capsys: pytest.CaptureFixture[str], adapter_copy: Path, file: str,
                                   content: bytes | None) -> None:
    if content is None:
        (adapter_copy / file).unlink()
    else:
        (adapter_copy / file).write_bytes(content)
    msg = fails(capsys, "predict", "--adapter", str(adapter_copy), "great movie")
    assert str(adapter_copy) in msg


def test_adapter_config_with_wrong_shapes(capsys: pytest.CaptureFixture[str], adapter_copy: Path) -> None:
    config: dict[str, Any] = json.loads((adapter_copy / "adapter_config.json").read_text())
    config["method_config"]["num_tokens"] += 1
    (adapter_copy / "adapter_config.json").write_text(json.dumps(config))
    assert "shape" in fails(capsys, "predict", "--adapter", str(adapter_copy), "great movie")


def test_adapter_made_for_another_backbone(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    msg = fails(capsys, "predict", "--adapter", str(trained / "best"), "--backbone", "tiny-llama", "great movie")
    assert "tiny-bert" in msg and "--backbone tiny-bert" in msg


def test_predict_with_nothing_to_classify(capsys: pytest.CaptureFixture[str], trained: Path,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert "nothing to classify" in fails(capsys, "predict", "--adapter", str(trained / "best"))
    assert "--file" in fails(capsys, "predict", "--adapter", str(trained / "best"), "--file", str(tmp_path / "x"))


# ---------------------------------------------------------------------------- nothing saved is lost
def test_a_bad_option_leaves_the_previous_run_intact(capsys: pytest.CaptureFixture[str], run_copy: Path,
                                                     data: Path) -> None:
    before = _snapshot(run_copy)
    fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(run_copy),
          "--option", "bogus=1")
    fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(run_copy),
          "--option", "num_tokens=500")
    assert _snapshot(run_copy) == before


def test_a_diverging_run_keeps_the_saved_adapter(capsys: pytest.CaptureFixture[str], run_copy: Path,
                                                 data: Path) -> None:
    best = (run_copy / "best/adapter_model.safetensors").read_bytes()
    checkpoint = _snapshot(run_copy / "checkpoint")
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(run_copy),
                "--lr", "1e30")
    assert "already holds a run" in msg  # refused before anything runs
    msg = fails(capsys, "train", "--train-file", str(data / "train.csv"), *FAST, "--output", str(run_copy),
                "--lr", "1e30", "--overwrite")  # asked to replace it, but the new run diverges: the old one stays
    assert "--lr" in msg
    assert (run_copy / "best/adapter_model.safetensors").read_bytes() == best
    assert _snapshot(run_copy / "checkpoint") == checkpoint
    ok(capsys, "predict", "--adapter", str(run_copy / "best"), "great movie")


def test_run_directory_instead_of_adapter_and_task_with_file(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run" / "best").mkdir(parents=True)
    (tmp_path / "run" / "best" / "adapter_config.json").write_text("{}")
    assert main(["predict", "--adapter", str(tmp_path / "run"), "hello"]) == 2
    assert "its adapter is" in capsys.readouterr().err
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    assert main(["predict", "--adapter", str(tmp_path / "run" / "metrics.jsonl"), "hello"]) == 2
    assert "is a file; give the adapter's folder" in capsys.readouterr().err
    assert main(["train", "--task", "mr", "--train-file", str(tmp_path / "x.csv")]) == 2
    assert "not both" in capsys.readouterr().err
