"""The verbaliser serving several tasks: per-task label words and templates, mixed batches, adapt, save/load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.batching import Encoded, batches
from promptlearning.data.examples import Example
from promptlearning.data.prompts import HANDWRITTEN, handwritten_template
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import ConfigError
from promptlearning.heads.base import HeadConfig, build_head
from promptlearning.model import PromptModel
from promptlearning.runs.multitask import adapt_to_task, run_multitask
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.training import TrainConfig

from .conftest import toy_examples
from .meta_toys import toy_data, toy_tasks  # noqa: F401  (fixture)

VERB = HeadConfig(kind="verbalizer")
MR = TaskInfo("mr", ["negative", "positive"], "is the movie review positive or negative?")
THREE = TaskInfo("tweets3", ["negative", "neutral", "positive"], "is the tweet negative, neutral or positive?")
SUBJ = TaskInfo("subj", ["objective", "subjective"], "is the sentence objective or subjective?")  # multi-token words
TEXTS = ["great movie", "i hate this boring film", "the phone works", "may be good", "awful acting", "so fun"]


def _model(llama: Backbone, method: str = "prompt_tuning", **kw: object) -> PromptModel:
    options = {"num_tokens": 2} if method == "prompt_tuning" else {}
    return PromptModel.build(llama, method, MR.labels, method_options=options, head=VERB, task="mr",
                             **kw).eval()  # type: ignore[arg-type]


def _items(model: PromptModel, task: int, texts: list[str] = TEXTS) -> list[Encoded]:
    return model.encode([Example(t, 0) for t in texts], task)


@torch.no_grad()
def _logits(model: PromptModel, items: list[Encoded]) -> torch.Tensor:
    batch = batches(items, len(items), model.pad_id, model.left_pad)[0]
    batch.labels = None
    return model(batch).logits


def test_new_tasks_add_no_parameters_and_get_their_own_template(llama: Backbone) -> None:
    model = _model(llama)
    trainable = model.num_trainable()
    assert model.head.serves_many_tasks and not list(model.head.parameters())
    model.add_task(THREE)
    model.add_task(TaskInfo("tickets", ["certain", "uncertain"], "is the ticket certain?"))
    assert not list(model.head.parameters()) and model.num_trainable() == trainable
    assert [t.labels for t in model.head.task_words] == [("negative", "positive"),  # type: ignore[union-attr]
                                                          ("negative", "neutral", "positive"),
                                                          ("certain", "uncertain")]
    assert model.template_of(0) == model.template == HANDWRITTEN["mr"]
    assert model.template_of(1) == HANDWRITTEN["tweets3"]
    assert model.template_of(2) == handwritten_template(None, ["certain", "uncertain"])  # named after its labels
    assert _items(model, 1)[0].input_ids != _items(model, 0)[0].input_ids  # rows are encoded with their template
    probs = model.predict_proba(["great movie"], task="tweets3")
    assert probs.shape == (1, 3) and torch.allclose(probs.sum(-1), torch.ones(1))
    assert model.predict(["great movie"], task="tickets")[0] in ("certain", "uncertain")


def test_an_explicit_template_serves_every_task(llama: Backbone, tmp_path: Path) -> None:
    model = _model(llama, template="{text_a} it was")
    model.add_task(THREE)
    assert model.task_templates is None and model.template_of(1) == "{text_a} it was"
    assert _items(model, 1)[0].input_ids == _items(model, 0)[0].input_ids
    model.save_pretrained(tmp_path)
    again = PromptModel.from_pretrained(tmp_path, backbone=llama)
    again.add_task(SUBJ)
    assert again.task_templates is None and again.template_of(2) == "{text_a} it was"


@pytest.mark.parametrize("names", [("mr", "tweets3"), ("mr", "tweets3", "subj")])
@pytest.mark.parametrize("method", ["fixed_prompt", "prompt_tuning"])
def test_a_mixed_batch_scores_each_row_as_its_own_task_would(llama: Backbone, names: tuple[str, ...],
                                                            method: str) -> None:
    model = _model(llama, method)
    for info in (THREE, SUBJ)[:len(names) - 1]:
        model.add_task(info)
    per_task = [_items(model, t, TEXTS[t:t + 3]) for t in range(len(names))]
    mixed = [row for group in zip(*per_task, strict=True) for row in group]  # task ids interleaved
    logits = _logits(model, mixed)
    assert logits.shape == (len(mixed), 3)
    alone = {t: _logits(model, items) for t, items in enumerate(per_task)}  # single-task batches
    for t, info in enumerate(model.tasks):  # and models built for that task alone, sharing the prompt
        own = PromptModel(llama, model.method, build_head(VERB, llama, info.labels), info.labels, task=info.name)
        assert own.encode([Example(x, 0) for x in TEXTS[t:t + 3]]) == [dataclasses.replace(x, task_id=0)
                                                                      for x in per_task[t]]
        assert torch.allclose(alone[t][:, :len(info.labels)], _logits(own.eval(), own.encode(
            [Example(x, 0) for x in TEXTS[t:t + 3]])), atol=1e-5), info.name
    for row, item in enumerate(mixed):
        t = item.task_id
        width = len(model.tasks[t].labels)
        expected = alone[t][per_task[t].index(item), :width]
        assert torch.allclose(logits[row, :width], expected, atol=1e-5), (row, names[t])
        assert (logits[row, width:] < -1e3).all()  # another task's label slots are never chosen
    assert torch.isfinite(logits).all()


def test_adding_a_task_leaves_the_first_tasks_scores_bit_identical(llama: Backbone) -> None:
    model = _model(llama)
    items = _items(model, 0)
    before = _logits(model, items)
    assert before.shape == (len(items), 2)
    model.add_task(THREE)
    model.add_task(SUBJ)
    after = _logits(model, _items(model, 0))
    assert torch.equal(after[:, :2], before) and (after[:, 2] < -1e3).all()


def test_the_tasks_batches_train_through_the_verbaliser(llama: Backbone) -> None:
    model = _model(llama)
    model.add_task(SUBJ)
    model.train()
    items = [x for t in (0, 1) for x in model.encode(toy_examples(2), t)]
    batch = batches(items, len(items), model.pad_id, model.left_pad)[0]
    loss = model(batch).loss
    assert loss is not None and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.method.parameters())


def test_save_and_load_round_trip_a_verbaliser_serving_several_tasks(llama: Backbone, tmp_path: Path) -> None:
    model = _model(llama)
    model.add_task(THREE)
    model.add_task(SUBJ)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["task_templates"] == {"mr": HANDWRITTEN["mr"], "tweets3": HANDWRITTEN["tweets3"],
                                       "subj": HANDWRITTEN["subj"]}
    again = PromptModel.from_pretrained(tmp_path, backbone=llama).eval()
    assert [t.name for t in again.tasks] == ["mr", "tweets3", "subj"]
    assert again.task_templates == model.task_templates
    assert again.head.task_words == model.head.task_words  # type: ignore[union-attr]
    mixed = [x for t in range(3) for x in _items(model, t)]
    assert [x.input_ids for x in mixed] == [x.input_ids for t in range(3) for x in _items(again, t)]
    assert torch.equal(_logits(again, mixed), _logits(model, mixed))


def test_old_single_task_adapters_load_and_take_new_tasks_with_their_template(llama: Backbone,
                                                                             tmp_path: Path) -> None:
    model = _model(llama)
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "adapter_config.json"
    config = json.loads(config_file.read_text())
    del config["task_templates"]  # as written before per-task templates
    config_file.write_text(json.dumps(config))
    old = PromptModel.from_pretrained(tmp_path, backbone=llama).eval()
    assert torch.equal(_logits(old, _items(old, 0)), _logits(model, _items(model, 0)))
    old.add_task(TaskInfo("cr", MR.labels, "is the product review positive or negative?"))
    assert old.template_of(1) == HANDWRITTEN["cr"]


def test_adapt_a_single_task_verbaliser_at_k0_and_k4(llama: Backbone, toy_tasks: list[str],  # noqa: F811
                                                     tmp_path: Path) -> None:
    model = PromptModel.build(llama, "prompt_tuning", ["negative", "positive"], method_options={"num_tokens": 2},
                              head=VERB, task="toy_movies")
    quiet = {"max_test": None, "quiet": True, "log": lambda *_: None}
    zero = adapt_to_task(model, toy_data("toy_phones"), shots=0, **quiet)  # type: ignore[arg-type]
    assert zero["steps"] == 0 and zero["before"] == zero["after"]
    assert model.task_index("toy_phones") == 1 and model.num_trainable() == 2 * 32
    few = adapt_to_task(model, toy_data("toy_films"), shots=2, steps=2, **quiet)  # type: ignore[arg-type]
    assert few["steps"] == 2 and 0.0 <= few["after"] <= 1.0
    model.save_pretrained(tmp_path / "adapted")
    again = PromptModel.from_pretrained(tmp_path / "adapted", backbone=llama)
    texts = ["phone broke very", "battery good so"]
    for task in ("toy_movies", "toy_phones", "toy_films"):
        assert torch.equal(again.predict_proba(texts, task=task), model.predict_proba(texts, task=task))


def test_cli_adapt_from_a_verbaliser_adapter(llama: Backbone, toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                             capsys: pytest.CaptureFixture[str]) -> None:
    model = PromptModel.build(llama, "fixed_prompt", ["negative", "positive"], head=VERB, task="mr")
    model.save_pretrained(tmp_path / "single")
    assert main(["adapt", "--from", str(tmp_path / "single"), "--task", "toy_phones", "--shots", "0",
                 "--max-test", "4", "--output", str(tmp_path / "both"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "toy_phones: template" in out and "serving mr, toy_phones" in out
    both = PromptModel.from_pretrained(tmp_path / "both", backbone=llama)
    assert both.template_of(1) == handwritten_template("toy_phones", ["negative", "positive"])
    assert both.template_of(0) == HANDWRITTEN["mr"]


def test_multitask_training_with_the_verbaliser(llama: Backbone, toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    cfg = ExperimentConfig(backbone="tiny-llama", method="prompt_tuning", method_options={"num_tokens": 2},
                           head=VERB, tasks=["toy_movies", "toy_phones"], output_dir=str(tmp_path / "run"),
                           train=TrainConfig(max_steps=2, eval_every=2, quiet=True, batch_size=4))
    cfg.data.shots = 2
    result = run_multitask(cfg, log=lambda *_: None)
    assert result["_model"].head.kind == "verbalizer"
    loaded = PromptModel.from_pretrained(tmp_path / "run" / "best", backbone=result["_model"].backbone)
    assert [t.name for t in loaded.tasks] == ["toy_movies", "toy_phones"]
    assert loaded.task_templates == result["_model"].task_templates
    assert main(["train", "--tasks", "toy_movies,toy_films", "--backbone", "tiny-llama", "--head", "verbalizer",
                 "--method", "prompt_tuning", "--shots", "2", "--max-steps", "1", "--quiet"]) == 0


@pytest.mark.parametrize("info, message", [
    (TaskInfo("blank", ["negative", " "]), "cannot be scored"),
    (TaskInfo("clash", ["a", "b"], label_texts={"a": ["good"], "b": ["good"]}), "collide"),
])
def test_a_new_task_whose_words_cannot_be_scored_is_refused_in_one_line(llama: Backbone, info: TaskInfo,
                                                                       message: str) -> None:
    model = _model(llama)
    with pytest.raises(ConfigError, match=message) as caught:
        model.add_task(info)
    assert "\n" not in str(caught.value) and repr(info.name) in str(caught.value)
    assert "label_description" in str(caught.value)
    assert len(model.tasks) == 1 and len(model.head.task_words) == 1  # type: ignore[union-attr]
    assert model.task_templates == {"mr": HANDWRITTEN["mr"]}
    model.add_task(dataclasses.replace(info, name="fine", labels=["good", "bad"], label_texts={}))
    assert model.task_index("fine") == 1  # the model is still usable


def test_cli_adapt_with_label_words_scores_those_words(llama: Backbone, toy_tasks: list[str],  # noqa: F811
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = PromptModel.build(llama, "fixed_prompt", ["negative", "positive"], head=VERB, task="mr")
    model.save_pretrained(tmp_path / "single")
    assert main(["adapt", "--from", str(tmp_path / "single"), "--task", "toy_phones", "--shots", "0",
                 "--label-words", "{negative: [bad], positive: [good, great]}", "--max-test", "4",
                 "--output", str(tmp_path / "worded"), "--quiet"]) == 0
    worded = PromptModel.from_pretrained(tmp_path / "worded", backbone=llama)
    words = worded.head.task_words[1]  # type: ignore[union-attr]
    tokenizer = llama.tokenizer
    assert words.word_ids == [[tuple(tokenizer.encode(" bad", add_special_tokens=False))],
                              [tuple(tokenizer.encode(" good", add_special_tokens=False)),
                               tuple(tokenizer.encode(" great", add_special_tokens=False))]]
    assert worded.tasks[1].label_texts == {"negative": ["bad"], "positive": ["good", "great"]}
    capsys.readouterr()
    assert main(["adapt", "--from", str(tmp_path / "single"), "--task", "toy_phones", "--shots", "0",
                 "--label-words", "{negative: [bad], postive: [good]}", "--output", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'postive', not a label of task 'toy_phones'" in err and "\n" not in err
    assert not (tmp_path / "typo").exists()
