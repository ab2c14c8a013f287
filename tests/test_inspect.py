"""`inspect`: nearest vocabulary tokens of learned and generated prompts, on the tiny backbones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.errors import ConfigError
from promptlearning.model import PromptModel
from promptlearning.runs.inspect_prompts import (
    APPROXIMATE,
    EXACT,
    NOT_TOKENS,
    capture_prompts,
    format_reports,
    inspect_prompts,
    nearest_tokens,
)

LABELS = ["negative", "positive"]


def _model(backbone: Backbone, method: str, **options: object) -> PromptModel:
    return PromptModel.build(backbone, method, LABELS, method_options=dict(options))


@pytest.mark.parametrize("text", ["great movie fun", "boring plot awful acting"])
def test_a_prompt_initialised_from_a_text_lists_exactly_its_tokens(any_backbone: Backbone, text: str) -> None:
    words = text.split()
    model = _model(any_backbone, "prompt_tuning", num_tokens=len(words), init="text", init_text=text)
    (report,) = inspect_prompts(model, k=3)
    assert report.site == "input" and report.input is None and report.space == EXACT
    assert [near[0][0] for near in report.neighbours] == words
    assert all(abs(near[0][1] - 1.0) < 1e-5 for near in report.neighbours)
    assert all(len(near) == 3 and near[0][1] >= near[1][1] >= near[2][1] for near in report.neighbours)


def test_nearest_tokens_ranks_by_cosine_not_by_norm(bert: Backbone) -> None:
    emb = bert.input_embeddings().weight.detach()
    ids = bert.tokenizer.convert_tokens_to_ids(["film", "boring"])
    vectors = torch.stack([emb[ids[0]] * 7.0, -emb[ids[1]]])  # scaled: same direction; negated: opposite
    near = nearest_tokens(vectors, emb, bert.tokenizer, k=2)
    assert near[0][0][0] == "film" and abs(near[0][0][1] - 1.0) < 1e-5
    assert all(token != "boring" for token, _ in near[1])


def test_input_dependent_prompts_need_texts_and_are_shown_per_text(bert: Backbone) -> None:
    model = _model(bert, "generator", layers=[0, 1], num_tokens=2)
    with pytest.raises(ConfigError, match="--text"):
        inspect_prompts(model)
    reports = inspect_prompts(model, ["great movie", "awful film"], k=2)
    assert [(r.site, r.input) for r in reports] == [("layer 0", "great movie"), ("layer 0", "awful film"),
                                                   ("layer 1", "great movie"), ("layer 1", "awful film")]
    assert all(r.space == APPROXIMATE and len(r.neighbours) == 2 for r in reports)
    assert reports[0].norms != reports[1].norms  # a different prompt for a different input
    assert "approximation" in format_reports(reports)


def test_captured_prompts_are_what_the_method_places(bert: Backbone) -> None:
    model = _model(bert, "generator", layers=[1], num_tokens=2)
    captured = capture_prompts(model, ["great movie", "awful film", "great movie"])["layer 1"]  # (3, 2, H)
    assert captured.shape == (3, 2, bert.info.hidden_size)
    assert torch.allclose(captured[0], captured[2], atol=1e-6) and not torch.allclose(captured[0], captured[1])


def test_deep_prompts_are_learned_but_in_hidden_space(bert: Backbone) -> None:
    model = _model(bert, "p_tuning_v2", num_tokens=2, layers=[1])
    (report,) = inspect_prompts(model)  # no text needed: the same for every input
    assert report.site == "layer 1" and report.input is None and report.space == APPROXIMATE
    assert torch.allclose(torch.tensor(report.norms), model.method.prompts[0].detach().norm(dim=-1))


def test_template_pseudo_tokens_are_in_token_space(bert: Backbone) -> None:
    model = _model(bert, "p_tuning", encoder="mlp", template="[P2] {text_a} [P1]")
    (report,) = inspect_prompts(model, k=1)
    assert report.site == "template" and report.space == EXACT and len(report.neighbours) == 3


def test_key_value_prefixes_are_reported_as_not_token_space(any_backbone: Backbone) -> None:
    model = _model(any_backbone, "prefix_tuning", num_tokens=3)
    reports = inspect_prompts(model)
    assert [r.site for r in reports] == [f"prefix {i}" for i in range(any_backbone.info.num_layers)]
    assert all(r.space == NOT_TOKENS and r.neighbours == [] and len(r.norms) == 3 for r in reports)
    assert "not in token space" in format_reports(reports)
    json.dumps([r.to_dict() for r in reports])


def test_a_method_without_prompts_is_a_clear_error(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="no prompt vectors"):
        inspect_prompts(_model(bert, "linear_probe"))
    with pytest.raises(ConfigError, match="--top"):
        inspect_prompts(_model(bert, "prompt_tuning", num_tokens=2), k=0)


# ---------------------------------------------------------------------------- the command
def _adapter(tmp_path: Path, backbone: Backbone, method: str, **options: object) -> Path:
    return _model(backbone, method, **options).save_pretrained(tmp_path / method)


def test_inspect_command_prints_a_table_and_json(bert: Backbone, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    adapter = _adapter(tmp_path, bert, "prompt_tuning", num_tokens=2, init="text", init_text="fun story")
    assert main(["inspect", str(adapter), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "input prompt, learned" in out and "fun 1.000" in out and "story 1.000" in out
    assert main(["inspect", str(adapter), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["method"] == "prompt_tuning"
    assert [p["nearest"][0]["token"] for p in record["sites"][0]["positions"]] == ["fun", "story"]
    assert main(["inspect", str(adapter), "--text", "a film"]) == 0  # a learned prompt: the text changes nothing
    assert "the same prompt before every input" in capsys.readouterr().err


def test_inspect_command_reads_texts_from_a_file(bert: Backbone, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    adapter = _adapter(tmp_path, bert, "generator", layers=[0], num_tokens=1)
    (tmp_path / "in.txt").write_text("great movie\n\nawful film\n")
    assert main(["inspect", str(adapter), "--file", str(tmp_path / "in.txt"), "--json"]) == 0
    captured = capsys.readouterr()
    sites = json.loads(captured.out)["sites"]
    assert [s["input"] for s in sites] == ["great movie", "awful film"] and "same prompt" not in captured.err


@pytest.mark.parametrize("extra", [[], ["--file", "missing.txt"], ["--top", "0"]])
def test_inspect_command_errors_are_one_line(bert: Backbone, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             extra: list[str]) -> None:
    adapter = _adapter(tmp_path, bert, "generator", layers=[0], num_tokens=1)
    assert main(["inspect", str(adapter), *[str(tmp_path / e) if e.endswith(".txt") else e for e in extra]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_inspect_command_on_a_missing_adapter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.real
def test_inspect_on_minilm_reads_back_an_initialising_text() -> None:
    from promptlearning.backbones import load_backbone

    backbone = load_backbone("minilm-l6")
    text = "a wonderful movie"
    n = len(backbone.tokenizer(text, add_special_tokens=False)["input_ids"])
    model = _model(backbone, "prompt_tuning", num_tokens=n, init="text", init_text=text)
    (report,) = inspect_prompts(model, k=2)
    assert [near[0][0] for near in report.neighbours] == ["a", "wonderful", "movie"]
