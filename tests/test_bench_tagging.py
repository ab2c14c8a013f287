"""The tagging job kind on tiny-bert: a toy tagging suite runs through the bench (in-domain and a
cross-domain test file scored by the same job), every row lands once, a rerun runs nothing, and the
report and the published tagging table are built from the store alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlearning.bench import runner as bench
from promptlearning.bench.kinds import kind_of
from promptlearning.bench.report import build_report
from promptlearning.bench.store import ResultStore
from promptlearning.bench.suite import Job, load_suite
from promptlearning.errors import ConfigError, UnknownNameError
from tests.token_toy import toy_sentences, write_conll, write_word_tag

SUITE = """
name: toy_tagging
store: store
kind: tagging
backbone: tiny-bert
tasks: [{name: toy_pos, train_file: train.txt}]
cross_domain: [{name: other_domain, test_file: other.conll}]
shots: [2, 4]
seeds: [1]
max_test: 6
max_length: 40
train: {max_steps: 2, eval_every: 2}
methods:
  - {method: p_tuning_v2, method_options: {num_tokens: 2}}
  - {method: prompt_tuning, method_options: {num_tokens: 2}}
  - finetune
report:
  - {table: tagging, out: table.md, notes: "A toy suite."}
"""


def _suite(tmp_path: Path, text: str = SUITE) -> Path:
    write_word_tag(tmp_path / "train.txt", toy_sentences(40, seed=0))
    other = toy_sentences(10, seed=5)
    write_conll(tmp_path / "other.conll", [(w, t) for w, t in other if "RB" not in t] + [(["the", "zebra"], ["DT", "UH"])])
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _never(job: Job, log: object = None, workdir: object = None) -> dict[str, object]:
    raise AssertionError(f"a finished job ran again: {job.label}")


def test_a_tagging_suite_runs_resumes_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = load_suite(_suite(tmp_path))
    assert len(suite.jobs) == 6 and {kind_of(j.config) for j in suite.jobs} == {"tagging"}
    assert {j.config["head"]["kind"] for j in suite.jobs} == {"token_classification"}  # the kind's default head
    counts = bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)
    with ResultStore(tmp_path / "store") as store:
        errors = [f"{r['label']}: {r['error']}" for r in store.rows("failed")]
        rows = store.rows()
    assert counts["done"] == 6 and counts["failed"] == 0, errors
    for r in rows:
        res = r["result"]
        assert 0 <= res["test_accuracy"] <= 1 and 0 <= res["test_macro_f1"] <= 1
        other = res["cross_domain"]["other_domain"]
        # the cross-domain file's UH tag is not in the training tag set: scored wrong, counted apart
        assert other["unseen_tags"] == ["UH"] and other["unseen_tag_words"] == 1
        assert other["accuracy"] <= other["accuracy_known_tags"] and 1 <= other["n"] <= 6  # max_test caps it too
        assert res["test"]["n"] == 6 and res["task"] == "toy_pos" and res["machine"]["torch"]
    assert sorted((r["label"], r["shots"]) for r in rows) == sorted(
        (m, k) for m in ("p_tuning_v2", "prompt_tuning", "finetune") for k in (2, 4))

    monkeypatch.setattr(bench, "execute_job", _never)  # a rerun finds every job done
    assert bench.run_bench(suite, tmp_path / "store", threads=1, log=lambda _: None)["done"] == 6

    build_report(suite.path)
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("# toy_tagging\n\nA toy suite.\n")
    assert "| method | toy_pos K=2 | toy_pos K=4 | other_domain K=2 | other_domain K=4 |" in table
    assert "Gap to fine-tuning" in table and "Share of prompt tuning's gap" in table
    wsj = next(r for r in rows if r["label"] == "p_tuning_v2" and r["shots"] == 2)["result"]
    assert f"| p_tuning_v2 | {100 * wsj['test_accuracy']:.1f} (1) |" in table
    text = (tmp_path / "store" / "report.md").read_text()
    assert "# Token labelling" in text and "## tiny-bert, trained on toy_pos (cross-domain: other_domain)" in text


def test_more_seeds_add_jobs_and_keep_the_finished_ones(tmp_path: Path) -> None:
    one = load_suite(_suite(tmp_path))
    two = load_suite(_suite(tmp_path, SUITE.replace("seeds: [1]", "seeds: [1, 2]")))
    assert {j.key for j in one.jobs} < {j.key for j in two.jobs}


@pytest.mark.parametrize("change, error, expected", [
    (("tasks: [{name: toy_pos, train_file: train.txt}]", "tasks: [mr]"), UnknownNameError, "unknown tagging task 'mr'"),
    (("cross_domain: [{name: other_domain, test_file: other.conll}]", "cross_domain: [{file: x}]"), ConfigError,
     "each cross_domain entry"),
    (("  - finetune\n", "  - finetune\nhead: {kind: classification}\n"), ConfigError, "token_classification"),
    (("  - finetune\n", "  - finetune\nlatency_repeats: 1\n"), ConfigError, "unknown key.*latency_repeats"),
])
def test_bad_tagging_suites_are_one_line_errors(tmp_path: Path, change: tuple[str, str], error: type[Exception],
                                                expected: str) -> None:
    with pytest.raises(error, match=expected) as info:
        load_suite(_suite(tmp_path, SUITE.replace(*change)))
    assert "\n" not in str(info.value)


def _row(suite: str, label: str, method: str, seed: int, acc: float, oanc: float) -> dict[str, object]:
    config = {"kind": "tagging", "method": method, "backbone": "minilm-l6", "max_length": 128,
              "data": {"shots": 8, "max_test": 300}, "train": {"max_steps": 100, "batch_size": 8, "seed": seed}}
    result = {"test_accuracy": acc, "test_macro_f1": acc / 2, "cross_domain": {"pos_oanc": {"accuracy": oanc}},
              "majority_test_accuracy": 0.13, "trainable_params": 10, "trainable_share": 0.001,
              "seconds_per_step": 0.5, "best_step": 80}
    return {"suite": suite, "label": label, "task": "pos_wsj", "shots": 8, "seed": seed, "config": config,
            "result": result}


def test_the_table_pairs_seeds_and_reads_the_suites_it_is_told(tmp_path: Path) -> None:
    from promptlearning.bench.tables import write_table

    rows = [_row("a", "finetune", "finetune", 1, 0.80, 0.70), _row("a", "prompt_tuning", "prompt_tuning", 1, 0.60, 0.50),
            _row("a", "deep", "p_tuning_v2", 1, 0.75, 0.65), _row("b", "finetune", "finetune", 2, 0.90, 0.80),
            _row("b", "prompt_tuning", "prompt_tuning", 2, 0.70, 0.60), _row("b", "deep", "p_tuning_v2", 2, 0.71, 0.61)]
    entry = {"table": "tagging", "out": "t.md"}
    write_table(entry, rows, tmp_path / "a.yaml", "a")  # its own suite's rows only: seed 1
    own = (tmp_path / "t.md").read_text()
    assert "| deep | -5.0 (1) | -5.0 (1) |" in own and "| deep | 75 (1) | 75 (1) |" in own
    write_table({**entry, "suites": ["a", "b"]}, rows, tmp_path / "a.yaml", "a")  # both seeds, paired
    both = (tmp_path / "t.md").read_text()
    # gap to fine-tuning: -5 and -19 points; share of prompt tuning's gap closed: (73-65)/(85-65) = 40 %
    assert "| deep | -12.0 ± 9.9 (2) | -12.0 ± 9.9 (2) |" in both and "| deep | 40 (2) | 40 (2) |" in both
    assert "| prompt_tuning | 65.0 ± 7.1 (2) | 55.0 ± 7.1 (2) |" in both
    assert "benchmarks/suites/a.yaml`, `promptlearning bench benchmarks/suites/b.yaml`" in both
    close = [_row("a", "finetune", "finetune", 1, 0.80, 0.70), _row("a", "prompt_tuning", "prompt_tuning", 1, 0.798, 0.60),
             _row("a", "deep", "p_tuning_v2", 1, 0.75, 0.65)]
    write_table(entry, close, tmp_path / "a.yaml", "a")  # prompt tuning within half a point: no share of a gap
    assert "| deep | no gap | 50 (1) |" in (tmp_path / "t.md").read_text()
