"""Over-long inputs: the part kept is chosen (head, tail, head+tail), counted, reported and saved with the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.batching import encode
from promptlearning.data.examples import Example
from promptlearning.data.templates import Template
from promptlearning.data.truncation import TruncationCount, keep
from promptlearning.errors import ConfigError
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import ExperimentConfig

LONG = " ".join(["boring"] * 30) + " great"


def test_keep_takes_the_named_part() -> None:
    tokens = list(range(10))
    assert keep(tokens, 4, "head") == [0, 1, 2, 3]
    assert keep(tokens, 4, "tail") == [6, 7, 8, 9]
    assert keep(tokens, 8, "head+tail") == [0, 1, 4, 5, 6, 7, 8, 9]  # a quarter from the start
    assert keep(tokens, 20, "tail") == tokens


@pytest.mark.parametrize("mode", ["head", "tail", "head+tail"])
def test_encode_keeps_the_chosen_end_and_counts_the_cut(bert: Backbone, mode: str) -> None:
    tok = bert.tokenizer
    great = tok("great", add_special_tokens=False)["input_ids"]
    count = TruncationCount()
    (row, short) = encode(tok, [Example(LONG, 1), Example("great", 1)], 12, truncation=mode, count=count)
    assert len(row.input_ids) == 12
    body = list(row.input_ids[1:-1])
    ends_with_great = body[-len(great):] == great
    assert ends_with_great == (mode != "head")
    full = len(tok(LONG)["input_ids"])
    assert (count.inputs, count.cut, count.dropped) == (2, 1, full - 12)
    assert short.input_ids == tuple(tok("great")["input_ids"])  # short inputs untouched


def test_a_template_cuts_the_same_way(bert: Backbone) -> None:
    tok = bert.tokenizer
    great = tok(" great", add_special_tokens=False)["input_ids"]
    count = TruncationCount()
    ids, _ = Template.parse("[P] {text_a}").render(tok, Example(LONG, 1), 12, "tail", count)
    assert len(ids) == 12 and count.cut == 1
    assert great[-1] in ids


def test_pairs_keep_their_heads_only(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="single texts"):
        encode(bert.tokenizer, [Example(LONG, 0, "another text")], 12, truncation="tail")


def test_the_choice_is_saved_with_the_adapter_and_absent_at_its_default(bert: Backbone, tmp_path: Path) -> None:
    tail = PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2},
                             max_length=12, truncation="tail")
    loaded = PromptModel.from_pretrained(tail.save_pretrained(tmp_path / "tail"), bert)
    assert loaded.truncation == "tail"
    assert loaded.encode([Example(LONG, 0)]) == tail.encode([Example(LONG, 0)])
    head = PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    assert "truncation" not in json.loads((head.save_pretrained(tmp_path / "head") / "adapter_config.json").read_text())
    assert "truncation" not in ExperimentConfig().to_dict()  # stored job keys unchanged
    assert ExperimentConfig(truncation="tail").to_dict()["truncation"] == "tail"


def test_a_run_reports_what_it_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "long.csv"
    rows = [f"{LONG if i % 3 == 0 else 'great'} {i},pos" for i in range(6)] + [f"awful {i},neg" for i in range(6)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    test = tmp_path / "test.csv"
    test.write_text(f"text,label\n{LONG} again,pos\nawful again,neg\n")
    code = main(["train", "--train-file", str(data), "--test-file", str(test), "--backbone", "tiny-bert", "--shots", "3", "--max-steps", "2",
                 "--quiet", "--max-length", "12", "--truncation", "head+tail", "--output", str(tmp_path / "run")])
    assert code == 0
    out = capsys.readouterr()
    line = next(x for x in (out.out + out.err).splitlines() if x.startswith("truncation:"))
    assert "keeping the head+tail" in line and "--max-length 12" in line


def test_predict_says_how_many_inputs_it_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str], bert: Backbone) -> None:
    model = PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2},
                              max_length=12, truncation="tail")
    folder = model.save_pretrained(tmp_path / "adapter")
    capsys.readouterr()
    assert main(["predict", "--adapter", str(folder), "--backbone", "tiny-bert", LONG, "great"]) == 0
    err = capsys.readouterr().err
    assert "note: 1 of 2 inputs (" in err and "keeping the tail" in err


def test_a_tagging_run_refuses_another_truncation_instead_of_ignoring_it() -> None:
    from promptlearning.data.loading import DataConfig
    from promptlearning.heads import HeadConfig
    from promptlearning.runs.tagging import check_tagging_config

    cfg = ExperimentConfig(data=DataConfig(task="pos_wsj"), head=HeadConfig(kind="token_classification"))
    check_tagging_config(cfg)
    with pytest.raises(ConfigError, match="drop --truncation"):
        check_tagging_config(ExperimentConfig(data=DataConfig(task="pos_wsj"),
                                              head=HeadConfig(kind="token_classification"), truncation="tail"))
