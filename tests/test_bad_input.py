"""Bad input of issue 18, case by case: each ends in one line starting ``error:`` (exit 2) or, for a bench
sweep that could not run everything, a non-zero exit; nothing outside what a command wrote is touched.
(:mod:`tests.test_cli_fuzz` tries every option of every command; these pin the named cases.)"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from promptlearning.cli.main import main
from promptlearning.configs import build
from promptlearning.errors import ConfigError
from promptlearning.runs.continual import ContinualConfig
from promptlearning.runs.transfer import TransferConfig

from .conftest import NEGATIVE, POSITIVE
from .meta_toys import toy_tasks  # noqa: F401  (fixture)
from .resume_helper import SRC

LATIN1 = "caf\xe9 cr\xe8me\n".encode("latin-1")


@pytest.fixture
def toy_file(tmp_path: Path) -> Path:
    rng = random.Random(1)
    path = tmp_path / "toy.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(14):
            writer.writerow([f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", "pos"])
            writer.writerow([f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", "neg"])
    return path


def one_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------- files of the wrong kind
def test_config_that_is_a_folder_or_not_utf8_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "is a folder" in one_line(capsys, "train", "--config", str(tmp_path))
    (tmp_path / "latin1.yaml").write_bytes(b"description: " + LATIN1)
    assert "not UTF-8" in one_line(capsys, "train", "--config", str(tmp_path / "latin1.yaml"))


def test_input_files_that_are_folders_or_latin1_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                              toy_file: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(LATIN1)
    search = ["search", "evolution", "--train-file", str(toy_file), "--backbone", "tiny-llama", "--quiet"]
    assert "not UTF-8" in one_line(capsys, *search, "--seed-prompts-file", str(tmp_path / "latin1.txt"))
    assert "is a folder" in one_line(capsys, *search, "--seed-prompts-file", str(tmp_path))
    assert main(["train", "--train-file", str(toy_file), "--backbone", "tiny-bert", "--shots", "4", "--max-steps", "1",
                 "--quiet", "--no-baseline", "--output", str(tmp_path / "run")]) == 0
    assert "not UTF-8" in one_line(capsys, "inspect", str(tmp_path / "run" / "best"), "--file",
                                   str(tmp_path / "latin1.txt"))


def test_argparse_refusals_are_one_line_naming_help(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(capsys, "train", "--shots", "abc")
    assert "--shots" in line and "promptlearning train --help" in line


def test_a_non_utf8_argument_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # a Latin-1 byte on the command line reaches Python as a lone surrogate
    assert "not valid UTF-8" in one_line(capsys, "predict", "--adapter", "x", "caf\udce9")


def test_a_full_standard_output_is_one_line_on_stderr() -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "promptlearning.cli.main", "methods"], stdout=full,
                              stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin"},
                              timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "No space left" in lines[0]


def test_non_utf8_lines_on_stdin_are_one_line(tmp_path: Path, toy_file: Path) -> None:
    assert main(["train", "--train-file", str(toy_file), "--backbone", "tiny-bert", "--shots", "4", "--max-steps", "1",
                 "--quiet", "--no-baseline", "--output", str(tmp_path / "run")]) == 0
    proc = subprocess.run([sys.executable, "-m", "promptlearning.cli.main", "predict", "--adapter",
                           str(tmp_path / "run" / "best")], input=LATIN1, capture_output=True, timeout=300,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin", "LC_ALL": "C", "OMP_NUM_THREADS": "1"})
    err = proc.stderr.decode()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "not UTF-8" in lines[0], err


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize(("values", "named"), [
    ({"lr": float("nan")}, "finite"), ({"lr": float("inf")}, "finite"), ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "seed"), ({"data_seed": -5}, "data_seed"), ({"device": "nope"}, "device"),
    ({"max_length": 5}, "at least 8"), ({"max_length": 0}, "at least 8"), ({"max_length": 10**30}, "longer than"),
    ({"batch_size": 0}, "--batch-size"), ({"max_test": 0}, "--max-test"), ({"eval_every": -1}, "--eval-every"),
    ({"lr": -0.1}, "--lr"),
])
@pytest.mark.parametrize("cls", [ContinualConfig, TransferConfig])
def test_config_values_are_checked(cls: type, values: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build(cls, values)


def test_yaml_nan_in_a_config_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              toy_file: Path) -> None:
    (tmp_path / "c.yaml").write_text(f"tasks: [toy_movies, toy_films]\nlr: .nan\noutput: {tmp_path / 'o'}\n")
    assert "finite" in one_line(capsys, "continual", "--config", str(tmp_path / "c.yaml"))


def test_max_length_too_short_is_refused_on_train(capsys: pytest.CaptureFixture[str], toy_file: Path) -> None:
    for value in ("5", "0", "-1"):
        assert "at least 8" in one_line(capsys, "train", "--train-file", str(toy_file), "--backbone", "tiny-bert",
                                        "--max-length", value)


def test_generate_refuses_a_seed_numpy_cannot_take(capsys: pytest.CaptureFixture[str]) -> None:
    assert "seed" in one_line(capsys, "generate", "--adapter", "x", "--seed", str(2**70), "hello")
    assert "--max-new-tokens" in one_line(capsys, "generate", "--adapter", "x", "--max-new-tokens", "0", "hello")


def test_adapt_refuses_negative_shots(toy_tasks: list[str]) -> None:  # noqa: F811
    from promptlearning.runs.multitask import adapt_to_task

    with pytest.raises(ConfigError, match="--shots"):
        adapt_to_task(None, None, shots=-1)  # type: ignore[arg-type]  # refused before either is looked at


# ---------------------------------------------------------------------------- the prompt library stays inside
def _library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "c"
    assert main(["continual", "toy_movies,toy_films", "--backbone", "tiny-bert", "--shots", "2", "--steps", "1",
                 "--max-test", "4", "--no-scratch", "--num-tokens", "2",
                 "--output", str(out)]) == 0
    capsys.readouterr()
    return out / "library"


def test_a_library_entry_pointing_outside_is_refused_and_nothing_outside_changes(
        toy_tasks: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    library = _library(tmp_path, capsys)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    index = json.loads((library / "library.json").read_text())
    index["entries"][0]["dir"] = "../../precious"
    (library / "library.json").write_text(json.dumps(index))
    line = one_line(capsys, "continual", "toy_movies,toy_films", "--backbone", "tiny-bert", "--shots", "2", "--steps",
                    "1", "--max-test", "4", "--no-scratch", "--library", str(library), "--output", str(tmp_path / "d"))
    assert "outside" in line
    assert [p.name for p in outside.iterdir()] == ["keep.txt"] and (outside / "keep.txt").read_text() == "mine"
    index["entries"][0]["dir"] = str(outside)  # an absolute path too
    (library / "library.json").write_text(json.dumps(index))
    assert "outside" in one_line(capsys, "continual", "toy_movies,toy_films", "--backbone", "tiny-bert",
                                 "--library", str(library), "--output", str(tmp_path / "d"))


def test_a_library_that_is_a_file_is_one_line(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lib").write_text("not a library")
    assert "is a file" in one_line(capsys, "continual", "toy_movies,toy_films", "--backbone", "tiny-bert",
                                   "--library", str(tmp_path / "lib"))
    assert (tmp_path / "lib").read_text() == "not a library"


def test_library_never_replaces_a_folder_it_did_not_write(tmp_path: Path) -> None:
    from promptlearning.fileio import atomic_directory
    from promptlearning.runs.prompt_library import ADAPTER_DIR, REPR_FILE

    folder = tmp_path / "entries" / "000-x"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="did not write"), atomic_directory(folder, (REPR_FILE, ADAPTER_DIR)):
        pass
    assert (folder / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------- bench
def test_bench_store_that_is_a_file_and_suite_that_is_a_folder(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path, toy_file: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nbackbone: tiny-bert\ntasks: [{{name: toy, train_file: {toy_file}}}]\nshots: 2\n"
                     "seeds: [1]\nmax_test: 4\ntrain: {max_steps: 1}\nmethods: [linear_probe]\n")
    (tmp_path / "store").write_text("x")
    assert "is a file" in one_line(capsys, "bench", str(suite), "--store", str(tmp_path / "store"))
    assert "is a folder" in one_line(capsys, "bench", str(tmp_path))
    assert "--threads" in one_line(capsys, "bench", str(suite), "--store", str(tmp_path / "s2"), "--threads", "100000")
    assert (tmp_path / "store").read_text() == "x"


def test_a_sweep_with_jobs_not_run_exits_non_zero(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, toy_file: Path) -> None:
    from promptlearning.bench import runner

    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nbackbone: tiny-bert\ntasks: [{{name: toy, train_file: {toy_file}}}]\nshots: 2\n"
                     "seeds: [1]\nmax_test: 4\ntrain: {max_steps: 1}\nmethods: [linear_probe]\n")
    # a worker that died before its job: the job stays pending
    monkeypatch.setattr(runner, "work_loop", lambda *a, **k: {"done": 0, "failed": 0})
    assert main(["bench", str(suite), "--store", str(tmp_path / "st"), "--quiet"]) == 1
    assert "not run" in capsys.readouterr().err
