"""Data in and out of the CLI: evaluating an adapter on a file alone, predict's file input and
tabular output (CSV/TSV/JSONL with a header, input columns carried, every label's probability)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from promptlearning.cli.main import main
from tests.conftest import toy_csv
from tests.test_cli import FAST, fails, ok


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("io")
    toy_csv(d / "train.csv", n_per_class=12, seed=5)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--train-file", str(d / "train.csv"), *FAST, "--output", str(d / "run")])
    assert code == 0, err.getvalue()
    return d / "run" / "best"


def _test_file(path: Path, text_col: str = "review", label_col: str = "gold") -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", text_col, label_col])
        w.writerows([[1, "good great", "pos"], [2, "bad awful", "neg"], [3, "great fine", "pos"]])
    return path


def test_evaluate_a_file_with_only_the_adapter(capsys: pytest.CaptureFixture[str], adapter: Path,
                                               tmp_path: Path) -> None:
    plain = _test_file(tmp_path / "t.csv", "text", "label")
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(plain)))
    assert scores["n"] == 3 and scores["split"] == "test"
    named = _test_file(tmp_path / "named.csv")
    again = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(named),
                          "--text-column", "review", "--label-column", "gold"))
    assert again["accuracy"] == scores["accuracy"]


def test_evaluate_file_refuses_a_label_the_adapter_does_not_know(capsys: pytest.CaptureFixture[str],
                                                                 adapter: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood great,maybe\n")
    msg = fails(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(bad))
    assert "'maybe'" in msg


def test_evaluate_dev_split_of_a_file_names_what_is_needed(capsys: pytest.CaptureFixture[str], adapter: Path,
                                                           tmp_path: Path) -> None:
    msg = fails(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(_test_file(tmp_path / "t.csv")),
                "--split", "dev")
    assert "--train-file" in msg


def test_evaluate_dev_split_reuses_the_adapters_shots(capsys: pytest.CaptureFixture[str], adapter: Path) -> None:
    train = adapter.parent.parent / "train.csv"
    out = json.loads(ok(capsys, "evaluate", "--adapter", str(adapter), "--train-file", str(train), "--split", "dev"))
    assert out["n"] == 8  # 4 shots per class, as trained, not the default 16


def test_predict_tsv_has_a_header(capsys: pytest.CaptureFixture[str], adapter: Path) -> None:
    lines = ok(capsys, "predict", "--adapter", str(adapter), "good great", "bad awful").splitlines()
    assert lines[0].split("\t") == ["label", "probability", "text"]
    assert len(lines) == 3 and lines[1].split("\t")[2] == "good great"


def test_predict_csv_input_keeps_multiline_texts_and_columns(capsys: pytest.CaptureFixture[str], adapter: Path,
                                                             tmp_path: Path) -> None:
    src = tmp_path / "mail.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "body", "label"])
        w.writerow(["a", "good great\nfine\ngreat", "pos"])
        w.writerow(["b", "bad awful", "neg"])
    out = tmp_path / "pred.csv"
    ok(capsys, "predict", "--adapter", str(adapter), "--file", str(src), "--text-column", "body", "--output", str(out))
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 2  # the three-line text is one input
    assert rows[0]["body"] == "good great\nfine\ngreat" and rows[0]["id"] == "a"
    assert rows[0]["input_label"] == "pos"  # the input's own label column is kept, renamed
    assert rows[0]["label"] in ("neg", "pos")
    assert abs(float(rows[0]["p_neg"]) + float(rows[0]["p_pos"]) - 1.0) < 1e-4


def test_predict_never_writes_over_its_input_an_adapter_or_an_earlier_file_unasked(
        capsys: pytest.CaptureFixture[str], adapter: Path, tmp_path: Path) -> None:
    src = tmp_path / "mails.csv"
    src.write_text("body\ngood great\n")
    config = adapter / "adapter_config.json"
    kept = {p: p.read_bytes() for p in (src, config)}
    base = ["predict", "--adapter", str(adapter), "--file", str(src), "--text-column", "body"]
    assert "is the input --file" in fails(capsys, *base, "--output", str(src), "--overwrite")
    assert "inside the adapter folder" in fails(capsys, *base, "--output", str(config), "--output-format", "jsonl",
                                                "--overwrite")
    assert "is a folder; give a file name" in fails(capsys, *base, "--output", str(tmp_path), "--output-format", "csv")
    assert all(p.read_bytes() == before for p, before in kept.items())
    out = tmp_path / "pred.csv"
    ok(capsys, *base, "--output", str(out))
    first = out.read_bytes()
    out.write_text("my notes\n")
    assert "exists; add --overwrite" in fails(capsys, *base, "--output", str(out))
    assert out.read_text() == "my notes\n"
    ok(capsys, *base, "--output", str(out), "--overwrite")
    assert out.read_bytes() == first


def test_predict_jsonl_output_by_format(capsys: pytest.CaptureFixture[str], adapter: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "good great", "k": 7}) + "\n")
    records = [json.loads(x) for x in ok(capsys, "predict", "--adapter", str(adapter), "--file", str(src),
                                         "--output-format", "jsonl").splitlines()]
    assert records[0]["k"] == 7 and set(records[0]["probabilities"]) == {"neg", "pos"}
    assert records[0]["label"] == max(records[0]["probabilities"], key=records[0]["probabilities"].get)


def test_predict_refuses_an_empty_text(capsys: pytest.CaptureFixture[str], adapter: Path, tmp_path: Path) -> None:
    assert "empty" in fails(capsys, "predict", "--adapter", str(adapter), "  ")
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,\n2,good\n")
    msg = fails(capsys, "predict", "--adapter", str(adapter), "--file", str(src))
    assert "empty" in msg and "line" in msg


def test_predict_missing_column_names_the_flag(capsys: pytest.CaptureFixture[str], adapter: Path,
                                               tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("body\ngood\n")
    assert "--text-column" in fails(capsys, "predict", "--adapter", str(adapter), "--file", str(src))


def test_predict_never_replaces_a_saved_runs_files_even_with_overwrite(capsys: pytest.CaptureFixture[str],
                                                                        adapter: Path, tmp_path: Path) -> None:
    """Only the --adapter folder itself used to be protected: another adapter's config, a checkpoint's state
    and a run's results.json were replaced by a prediction table under --overwrite."""
    run = adapter.parent  # the run the adapter fixture trained: best/, results.json, checkpoint/ ...
    other = tmp_path / "other_best"
    other.mkdir()
    (other / "adapter_config.json").write_text("{}")
    targets = [other / "adapter_config.json", run / "results.json"]
    targets += [p for p in (run / "checkpoint").glob("*") if p.is_file()][:1]
    for target in targets:
        before = target.read_bytes()
        err = fails(capsys, "predict", "--adapter", str(adapter), "a fine film", "--output", str(target),
                    "--output-format", "jsonl", "--overwrite")
        assert "would replace a file of" in err and "\n" not in err.strip(), err
        assert target.read_bytes() == before
    ok(capsys, "predict", "--adapter", str(adapter), "a fine film", "--output", str(run / "preds.jsonl"))


def test_evaluate_refuses_a_folder_as_a_text_adapters_test_file(capsys: pytest.CaptureFixture[str],
                                                                adapter: Path, tmp_path: Path) -> None:
    """Every folder was read as labelled images: a text adapter scored 0 of 0 and exited 0."""
    (tmp_path / "data").mkdir()
    toy_csv(tmp_path / "data" / "test.csv")
    for folder in (tmp_path / "data", adapter):
        err = fails(capsys, "evaluate", "--adapter", str(adapter), "--test-file", str(folder))
        assert "is a folder; a text adapter is scored on a CSV" in err and "\n" not in err.strip()
