"""Training generators: the loss reads the target tokens alone (against a hand computation), every method
the issue lists trains with the language-modelling head and round-trips save/load, answers do not depend
on batch-mates, and a generation run (baselines included) refuses what it cannot do."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.examples import Example
from promptlearning.data.loading import DataConfig
from promptlearning.data.target_batching import collate_targets, encode_pairs
from promptlearning.data.templates import Template, tokenize
from promptlearning.errors import ConfigError
from promptlearning.generation import generate_encoded
from promptlearning.heads.base import HeadConfig
from promptlearning.methods import get_method
from promptlearning.model import PromptModel
from promptlearning.runs.generation import run_generation
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.training import TrainConfig
from promptlearning.training.generation_eval import generate_answers, teacher_forced_scores
from promptlearning.training.generation_trainer import GenerationTrainer
from tests.pair_toy import toy_pairs, write_pairs

LM = HeadConfig(kind="language_modeling")
METHODS: dict[str, dict[str, Any]] = {"prompt_tuning": {"num_tokens": 3}, "prefix_tuning": {"num_tokens": 3},
                                      "p_tuning_v2": {"num_tokens": 3}, "finetune": {}}
TEMPLATE = "review : {text_a} answer :"


def _generator(backbone: Backbone, method: str, template: str = TEMPLATE) -> PromptModel:
    if get_method(method).trains_backbone:
        backbone = copy.deepcopy(backbone)
    return PromptModel.build(backbone, method, [], method_options=METHODS.get(method), head=LM, max_length=40,
                             template=template)


def test_the_loss_reads_the_target_tokens_alone(llama: Backbone) -> None:
    model = _generator(llama, "prompt_tuning").eval()
    tokenizer = llama.tokenizer
    template = Template.parse(TEMPLATE)
    pairs = [toy_pairs()[0], toy_pairs()[9]]
    batch = collate_targets(encode_pairs(tokenizer, template, pairs, 40), model.pad_id, left_pad=True)
    with torch.no_grad():
        loss = model(batch).loss
    # by hand: each pair alone (no padding); position p - 1 + j of the input predicts the target's token j
    total, count = 0.0, 0
    for pair in pairs:
        prompt, slots = template.render(tokenizer, Example(pair.input, 0), 40)
        target = tokenize(tokenizer, " " + pair.target) + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + target])
        row = collate_targets(encode_pairs(tokenizer, template, [pair], 40), model.pad_id, left_pad=True)
        assert row.input_ids.tolist() == ids.tolist()
        row.labels = None
        with torch.no_grad():
            logits = model(row).logits[0].float()  # (L, V): the head dropped the 3 prompt positions
        assert logits.shape[0] == len(prompt) + len(target)
        for j, token in enumerate(target):
            total -= float(logits[len(prompt) - 1 + j].log_softmax(-1)[token])
            count += 1
    assert loss is not None and float(loss) == pytest.approx(total / count, abs=1e-5)


def test_scores_off_the_target_change_nothing(llama: Backbone) -> None:
    model = _generator(llama, "prefix_tuning").eval()
    batch = collate_targets(encode_pairs(llama.tokenizer, Template.parse(TEMPLATE), toy_pairs(3), 40), model.pad_id,
                            left_pad=True)
    assert batch.labels is not None
    with torch.no_grad():
        scores = model(batch).logits
    loss = model.head.loss(scores, batch.labels)
    off_target = torch.zeros_like(batch.labels, dtype=torch.bool)
    off_target[:, :-1] = batch.labels[:, 1:] == -100  # positions that predict no target token
    noisy = scores + 5 * torch.randn_like(scores) * off_target.unsqueeze(-1)
    assert torch.equal(model.head.loss(noisy, batch.labels), loss)
    on_target = scores.clone()
    on_target[~off_target] += 5 * torch.randn_like(on_target[~off_target])
    assert not torch.equal(model.head.loss(on_target, batch.labels), loss)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_listed_method_trains_and_round_trips(method: str, llama: Backbone, tmp_path: Path) -> None:
    model = _generator(llama, method)
    items = encode_pairs(llama.tokenizer, Template.parse(TEMPLATE), toy_pairs(16), 40)
    batch = collate_targets(items, model.pad_id, model.left_pad)
    before = model.eval()(batch).loss
    config = TrainConfig(max_steps=8, batch_size=8, eval_every=4, quiet=True, seed=1,
                         lr=1e-2 if method != "finetune" else 1e-3)
    GenerationTrainer(model, config, items, items[:4], tmp_path / "run").fit()
    after = model.eval()(batch).loss
    assert before is not None and after is not None and after < before, f"{method}: {before} -> {after}"
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("dev_loss") == 2
    # on the backbone as it was (fine-tuning's adapter carries its own weights)
    loaded = PromptModel.from_pretrained(tmp_path / "run" / "best", backbone=copy.deepcopy(llama))
    assert loaded.template == TEMPLATE and type(loaded.head) is type(model.head)
    a, b = model.trainable_state(), loaded.trainable_state()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(model.eval()(batch).logits, loaded.eval()(batch).logits)
    inputs = [p.input for p in toy_pairs(3)]
    assert generate_answers(model, inputs, 4) == generate_answers(loaded, inputs, 4)


def test_answers_do_not_depend_on_batch_mates(llama: Backbone) -> None:
    model = _generator(llama, "p_tuning_v2")
    inputs = ["the movie was good", "a film", "the story was so very really boring and bad"]
    alone = [generate_answers(model, [text], 6) for text in inputs]
    assert generate_answers(model, inputs, 6, batch_size=3) == [a[0] for a in alone]


@pytest.mark.parametrize(("piece", "expected"), [("x\n", 1), ("\n", 5)])
def test_a_row_ends_at_its_first_line_break_after_text(llama: Backbone, piece: str, expected: int) -> None:
    model = _generator(copy.deepcopy(llama), "prompt_tuning", "{text_a}")
    forced = tokenize(llama.tokenizer, "good")[0]

    class Forced(torch.nn.Module):  # every step writes this token
        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(torch.full(hidden.shape[:-1], forced), llama.info.vocab_size).float()

    model.backbone.lm_head = Forced()
    tokenizer = copy.copy(llama.tokenizer)  # whose text is `piece`: a line break after text, or a bare one
    tokenizer.decode = lambda ids, **_: "".join(piece if i == forced else "?" for i in ids)  # type: ignore[method-assign]
    object.__setattr__(model.backbone, "tokenizer", tokenizer)
    rows = model.encode([Example("the film", 0)])
    assert generate_encoded(model, rows, max_new_tokens=5, until_line_end=True) == [[forced] * expected]
    assert generate_encoded(model, rows, max_new_tokens=5) == [[forced] * 5]


def test_teacher_forced_scores_count_every_target_token(llama: Backbone) -> None:
    model = _generator(llama, "prompt_tuning")
    items = encode_pairs(llama.tokenizer, Template.parse(TEMPLATE), toy_pairs(5), 40)
    scores = teacher_forced_scores(model, items, batch_size=2)
    assert scores["target_tokens"] == sum(sum(t != -100 for t in item.targets) for item in items)
    assert 0.0 <= scores["accuracy"] <= 1.0 and scores["loss"] > 0


def _config(tmp_path: Path, **changes: Any) -> ExperimentConfig:
    data = DataConfig(task=None, train_file=str(write_pairs(tmp_path / "pairs.jsonl", toy_pairs())), shots=6,
                      max_test=4)
    values: dict[str, Any] = {"data": data, "backbone": "tiny-llama", "method": "prefix_tuning",
                              "method_options": {"num_tokens": 2}, "head": LM, "max_length": 40,
                              "train": TrainConfig(max_steps=2, eval_every=1, quiet=True)}
    return ExperimentConfig(**{**values, **changes})


def test_a_generation_run_scores_and_saves(llama: Backbone, tmp_path: Path) -> None:
    result = run_generation(_config(tmp_path, output_dir=str(tmp_path / "run")), backbone=llama, log=lambda _: None)
    assert {"test_exact_match", "test_token_f1", "test_rouge_l", "test_bleu", "untrained_test_exact_match"} <= set(result)
    assert result["test"]["n"] == 4 and result["steps"] == 2 and (tmp_path / "run" / "best").is_dir()
    assert result["max_new_tokens"] >= 3


def test_the_fixed_prompt_baseline_writes_demonstrations_before_the_input(llama: Backbone, tmp_path: Path) -> None:
    cfg = _config(tmp_path, method="fixed_prompt", method_options={}, template="q : {text_a} a :", demonstrations=2,
                  output_dir=str(tmp_path / "icl"))
    result = run_generation(cfg, backbone=llama, log=lambda _: None)
    assert result["steps"] == 0 and result["trainable_params"] == 0 and result["demonstrations"] == 2
    model = result["_model"]
    assert model.template.count("q : ") == 3 and model.template.endswith("\n\nq : {text_a} a :")
    assert model.max_length > 40  # the demonstrations come on top of the input and target's --max-length
    loaded = PromptModel.from_pretrained(tmp_path / "icl" / "best", backbone=llama)
    assert loaded.template == model.template and loaded.max_length == model.max_length
    assert "demonstrations" not in ExperimentConfig().to_dict() and cfg.to_dict()["demonstrations"] == 2


@pytest.mark.parametrize(("changes", "expected"), [
    ({"demonstrations": 7}, "more pairs than the 6 training shots"),
    ({"demonstrations": -1}, "--demonstrations must be >= 0"),
    ({"head": HeadConfig(kind="classification")}, "use --head language_modeling"),
    ({"tasks": ["a", "b"]}, "one task at a time"),
    ({"template": "no slot"}, "has no input slot"),
])
def test_a_generation_run_refuses_what_it_cannot_do(llama: Backbone, tmp_path: Path, changes: dict[str, Any],
                                                    expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        run_generation(_config(tmp_path, **changes), backbone=llama, log=lambda _: None)


def test_an_encoder_cannot_generate(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="is an encoder: use --backbone smollm2-135m"):
        PromptModel.build(bert, "prompt_tuning", [], head=LM)
