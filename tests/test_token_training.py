"""Training taggers: every method (and fine-tuning and the linear probe) trains the token head on both
tiny backbones, a trained tagger saves and loads bit-exactly, a resume notices changed tags, and a
tagging run refuses what it cannot do."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.loading import DataConfig
from promptlearning.data.templates import Template
from promptlearning.data.token_batching import collate_tagged, encode_tagged
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.heads.base import HeadConfig
from promptlearning.methods import get_method, list_methods
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.runs.tagging import run_tagging
from promptlearning.training import TrainConfig
from promptlearning.training.token_metrics import predict_word_tags, tag_texts
from promptlearning.training.token_trainer import TokenTrainer
from tests.token_toy import toy_sentences, write_word_tag

TAGS = ["DT", "JJ", "NN", "RB", "VBZ"]
TAG_IDS = {t: i for i, t in enumerate(TAGS)}
OPTIONS: dict[str, dict[str, Any]] = {"prompt_tuning": {"num_tokens": 3}, "p_tuning_v2": {"num_tokens": 3},
                                      "hyperprompt": {"task_repr": "learned", "num_tokens": 3}}
METHODS = [cls.name for cls in list_methods() if "text" in cls.input_kinds]  # images: test_image_methods


def _tagger(backbone: Backbone, method: str) -> tuple[PromptModel, Template | None]:
    if get_method(method).trains_backbone:
        backbone = copy.deepcopy(backbone)
    model = PromptModel.build(backbone, method, TAGS, method_options=OPTIONS.get(method),
                              head=HeadConfig(kind="token_classification"), max_length=40)
    return model, Template.parse(model.template) if model.template else None


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_a_tagger_and_the_loss_falls(method: str, any_backbone: Backbone) -> None:
    model, template = _tagger(any_backbone, method)
    items = encode_tagged(model.backbone.tokenizer, toy_sentences(16), TAG_IDS, 40, template)
    batch = collate_tagged(items, model.pad_id, model.left_pad)
    before = model.eval()(batch).loss
    assert before is not None
    config = TrainConfig(max_steps=12, batch_size=8, eval_every=12, quiet=True, head_lr=0.05, seed=1)
    TokenTrainer(model, config, items, items[:4]).fit()
    after = model.eval()(batch).loss
    assert after is not None and after < before, f"{method}: loss {before.item():.4f} -> {after.item():.4f}"


@pytest.mark.parametrize(("method", "backbone_name"), [("p_tuning", "llama"), ("p_tuning_v2", "bert"),
                                                       ("prefix_tuning", "llama")])
def test_a_trained_tagger_saves_and_loads_bit_exactly(method: str, backbone_name: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    backbone: Backbone = request.getfixturevalue(backbone_name)
    model, template = _tagger(backbone, method)
    items = encode_tagged(backbone.tokenizer, toy_sentences(16), TAG_IDS, 40, template)
    TokenTrainer(model, TrainConfig(max_steps=6, eval_every=6, quiet=True), items, items[:4]).fit()
    model.save_pretrained(tmp_path / "tagger")
    loaded = PromptModel.from_pretrained(tmp_path / "tagger", backbone=backbone)
    assert loaded.labels == TAGS and loaded.head.output == "token_labels" and loaded.template == model.template
    batch = collate_tagged(items[:5], model.pad_id, model.left_pad)
    assert torch.equal(model.eval()(batch).logits, loaded.eval()(batch).logits)
    assert predict_word_tags(model, items) == predict_word_tags(loaded, items)
    texts = ["the zebra was really good", "a film"]
    assert tag_texts(model, texts) == tag_texts(loaded, texts)


def test_a_resume_with_other_tags_is_refused(bert: Backbone, tmp_path: Path) -> None:
    sentences = toy_sentences(16)
    config = TrainConfig(max_steps=4, eval_every=4, quiet=True)
    model, _ = _tagger(bert, "prompt_tuning")
    items = encode_tagged(bert.tokenizer, sentences, TAG_IDS, 40)
    TokenTrainer(model, config, items, items[:4], tmp_path).fit()
    retagged = [(words, ["NN" if t == "JJ" else t for t in tags]) for words, tags in sentences]  # same words
    other = encode_tagged(bert.tokenizer, retagged, TAG_IDS, 40)
    assert [i.input_ids for i in other] == [i.input_ids for i in items]
    again, _ = _tagger(bert, "prompt_tuning")
    with pytest.raises(TrainingError, match=r"other settings \(the data \(task or file"):
        TokenTrainer(again, config, other, other[:4], tmp_path).fit(resume=True)
    same, _ = _tagger(bert, "prompt_tuning")
    assert TokenTrainer(same, config, items, items[:4], tmp_path).fit(resume=True).steps == 4


def _config(train_file: Path, **changes: Any) -> ExperimentConfig:
    cfg = ExperimentConfig(data=DataConfig(task=None, train_file=str(train_file), shots=8), backbone="tiny-llama",
                           method="prompt_tuning", method_options={"num_tokens": 2},
                           head=HeadConfig(kind="token_classification"),
                           train=TrainConfig(max_steps=6, eval_every=3, quiet=True), max_length=40)
    return dataclasses.replace(cfg, **changes)


def test_a_tagging_run_reports_word_scores_and_saves_the_tagger(tmp_path: Path, llama: Backbone) -> None:
    corpus = write_word_tag(tmp_path / "toy.txt", toy_sentences(60))
    result = run_tagging(_config(corpus, output_dir=str(tmp_path / "run")), backbone=llama, log=lambda _: None)
    assert result["steps"] == 6 and result["tags"] == len(TAGS) and result["shots"] == 8
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test"]["words"] > result["test_sentences"]
    assert result["test"]["scheme"] == "tags" and "untrained_test_accuracy" in result
    loaded = PromptModel.from_pretrained(tmp_path / "run" / "best", backbone=llama)
    assert loaded.labels == TAGS and loaded.task == "toy"


@pytest.mark.parametrize(("changes", "message"), [
    ({"head": HeadConfig(kind="classification")}, "one label per text.*--head token_classification"),
    ({"tasks": ["a", "b"]}, "one task at a time"),
    ({"method": "spt"}, "plain trainer.*bilevel"),
])
def test_what_a_tagging_run_cannot_do_is_refused(tmp_path: Path, llama: Backbone, changes: dict[str, Any],
                                                  message: str) -> None:
    corpus = write_word_tag(tmp_path / "toy.txt", toy_sentences(60))
    with pytest.raises(ConfigError, match=message):
        run_tagging(_config(corpus, **changes), backbone=llama, log=lambda _: None)
