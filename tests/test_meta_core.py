"""Cross-task core: label-description head, multi-task prompt, hypernetwork, meta trainer, adapt."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.batching import batches
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import ConfigError, TrainingError, UnknownNameError
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.runs.multitask import adapt_to_task, run_multitask
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.training import TrainConfig
from promptlearning.training.meta_learning import MetaConfig, MetaTrainer
from promptlearning.training.multitask import MultiTaskConfig, MultiTaskTrainer, task_probabilities

from .meta_toys import toy_data, toy_tasks  # noqa: F401  (fixture)
from .resume_helper import Cut, assert_same_tensors, run_interrupted_then_resumed

LABEL_HEAD = HeadConfig(kind="label_description")


def _infos() -> list[TaskInfo]:
    return [TaskInfo(n, ["negative", "positive"], f"is the {n} text positive or negative?")
            for n in ("toy_movies", "toy_films", "toy_phones")]


def _model(bert: Backbone, method: str, **options: object) -> PromptModel:
    infos = _infos()
    return PromptModel.build(copy.deepcopy(bert), method, infos[0].labels, method_options={"num_tokens": 3, **options},
                             head=LABEL_HEAD, tasks=infos,
                             support={i.name: toy_data(i.name).pool[:6] for i in infos})


def _items(model: PromptModel) -> list:  # type: ignore[type-arg]
    return [x for i, info in enumerate(model.tasks) for x in model.encode(toy_data(info.name).pool, i)]


def test_label_description_head_has_no_per_task_parameters(bert: Backbone) -> None:
    model = _model(bert, "multitask_prompt")
    assert not list(model.head.parameters())
    assert model.head.label_vectors.shape[:2] == (3, 2)
    before = sum(p.numel() for p in model.head.parameters())
    model.add_task(TaskInfo("three", ["a", "b", "c"], "pick one"))
    assert sum(p.numel() for p in model.head.parameters()) == before == 0
    assert model.head.label_vectors.shape[:2] == (4, 3)
    # rows of a two-label task never choose the third (padding) slot
    batch = batches(model.encode(toy_data("toy_movies").pool[:4], 0), 4, model.pad_id)[0]
    assert (model(batch).logits[:, 2] < -1e3).all()
    assert model.predict_proba(["great movie"], task="three").shape == (1, 3)


def test_classification_head_refuses_a_second_task(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="label_description"):
        PromptModel.build(copy.deepcopy(bert), "prompt_tuning", ["negative", "positive"], tasks=_infos())


def test_hypernetwork_prompts_differ_across_tasks_and_repeat_within(bert: Backbone) -> None:
    model = _model(bert, "hyperprompt", task_repr="description", attention=False)
    with torch.no_grad():
        model.method.up.weight.normal_(std=0.1)  # trained weights: the task now matters
    items = [x for i in range(3) for x in model.encode(toy_data("toy_movies").pool[:2], i)]
    batch = batches(items, len(items), model.pad_id)[0]
    batch = dataclasses.replace(batch, task_repr=model.task_reprs[batch.task_ids])
    from promptlearning.injection import make_context

    ctx = make_context(model.backbone, model.method, batch)
    prompts = model.method.input_prompt(ctx)  # (6, P, H): rows 0-1 task 0, 2-3 task 1, 4-5 task 2
    assert torch.equal(prompts[0], prompts[1])
    assert not torch.allclose(prompts[0], prompts[2])
    assert not torch.allclose(prompts[2], prompts[4])


def test_description_representation_needs_a_description(bert: Backbone) -> None:
    infos = [TaskInfo("a", ["negative", "positive"], ""), TaskInfo("b", ["negative", "positive"], "x")]
    with pytest.raises(ConfigError, match="no description"):
        PromptModel.build(copy.deepcopy(bert), "hyperprompt", infos[0].labels, head=LABEL_HEAD, tasks=infos)


def test_unseen_task_uses_the_shared_prompt(bert: Backbone) -> None:
    model = _model(bert, "multitask_prompt")
    with torch.no_grad():
        model.method.task_u.normal_()
    index = model.add_task(TaskInfo("new", ["negative", "positive"], "new"))
    from promptlearning.methods.base import PromptContext

    ctx = PromptContext(batch_size=1, device=torch.device("cpu"), dtype=torch.float32,
                        task_ids=torch.tensor([index]))
    assert torch.equal(model.method.input_prompt(ctx)[0], model.method.shared)


def test_task_sampling_probabilities() -> None:
    assert torch.allclose(task_probabilities([10, 30], "proportional"), torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert torch.allclose(task_probabilities([10, 30], "uniform"), torch.tensor([0.5, 0.5], dtype=torch.float64))
    flat = task_probabilities([10, 40], "temperature", 2.0)
    assert 0.25 < float(flat[1]) < 0.8 and torch.isclose(flat.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_multitask_batches_mix_tasks_and_are_seeded(bert: Backbone) -> None:
    model = _model(bert, "multitask_prompt")
    trainer = MultiTaskTrainer(model, TrainConfig(batch_size=16, max_steps=2, quiet=True), _items(model), [])
    first = trainer.batch_at(0)
    assert len(set(first.task_ids.tolist())) > 1
    assert torch.equal(first.input_ids, trainer.batch_at(0).input_ids)


def _meta_trainer(bert: Backbone, algorithm: str, **kw: object) -> MetaTrainer:
    model = _model(bert, "prompt_tuning")
    settings: dict[str, object] = {"inner_steps": 2, "inner_lr": 0.5, "support_shots": 2, "query_size": 4,
                                   "tasks_per_step": 1, **kw}
    meta = MetaConfig(meta_algorithm=algorithm, **settings)  # type: ignore[arg-type]
    return MetaTrainer(model, TrainConfig(max_steps=2, quiet=True, seed=3), _items(model), [], meta=meta)


def test_inner_loop_lowers_the_support_loss(bert: Backbone) -> None:
    trainer = _meta_trainer(bert, "fomaml")
    support, _ = trainer.episodes(0)[0]
    start = {n: p for n, p in trainer.model.named_parameters() if n in trainer._names}
    before = trainer._loss(start, support).item()
    after = trainer._loss(trainer.adapt(start, support, create_graph=False), support).item()
    assert after < before


@pytest.mark.parametrize("algorithm", ["fomaml", "maml", "reptile", "reinforce"])
def test_every_outer_loop_moves_only_the_method(bert: Backbone, algorithm: str) -> None:
    trainer = _meta_trainer(bert, algorithm)
    trainer.model.zero_grad()
    trainer.training_step(trainer.batch_at(0), 0)
    grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert set(grads) == set(trainer._names)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())


def test_first_and_second_order_gradients_differ(bert: Backbone) -> None:
    found = []
    for algorithm in ("fomaml", "maml"):
        trainer = _meta_trainer(bert, algorithm)
        trainer.model.zero_grad()
        trainer.training_step(trainer.batch_at(0), 0)
        found.append(dict(trainer.model.named_parameters())["method.prompt"].grad.clone())
    assert found[0].shape == found[1].shape
    assert not torch.allclose(found[0], found[1])


def test_support_set_too_small_and_single_task_are_errors(bert: Backbone) -> None:
    with pytest.raises(TrainingError, match="too few"):
        _meta_trainer(bert, "fomaml", support_shots=10)
    model = _model(bert, "prompt_tuning")
    one_task = [x for x in _items(model) if x.task_id == 0]
    with pytest.raises(ConfigError, match="at least two"):
        MetaTrainer(model, TrainConfig(max_steps=1, quiet=True), one_task, [], meta=MetaConfig(meta_algorithm="fomaml"))


def _cfg(tmp_path: Path, **kw: object) -> ExperimentConfig:
    cfg = ExperimentConfig(backbone="tiny-bert", method="multitask_prompt", method_options={"num_tokens": 3},
                           tasks=["toy_movies", "toy_films"], output_dir=str(tmp_path / "run"),
                           train=TrainConfig(max_steps=4, eval_every=2, quiet=True, batch_size=4))
    cfg.data.shots = 4
    return dataclasses.replace(cfg, **kw)  # type: ignore[arg-type]


def test_multitask_run_saves_one_adapter_serving_every_task(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    result = run_multitask(_cfg(tmp_path), log=lambda *_: None)
    assert set(result["test_accuracy"]) == {"toy_movies", "toy_films"}
    model = result["_model"]
    loaded = PromptModel.from_pretrained(tmp_path / "run" / "best", backbone=model.backbone)
    assert [t.name for t in loaded.tasks] == ["toy_movies", "toy_films"]
    for name, tensor in model.trainable_state().items():
        assert torch.equal(tensor, loaded.trainable_state()[name]), name
    assert torch.equal(model.head.label_vectors, loaded.head.label_vectors)


def test_meta_state_round_trips_bit_exactly(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    cfg = _cfg(tmp_path, method="hyperprompt", meta=MetaConfig(meta_algorithm="fomaml", support_shots=1, query_size=2))
    model = run_multitask(cfg, log=lambda *_: None)["_model"]
    model.save_pretrained(tmp_path / "saved")
    loaded = PromptModel.from_pretrained(tmp_path / "saved", backbone=model.backbone)
    state, again = model.trainable_state(), loaded.trainable_state()
    assert set(state) == set(again) and "task_reprs" in state
    assert all(torch.equal(state[k], again[k]) for k in state)


def _checkpointed(cfg: ExperimentConfig) -> ExperimentConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, checkpoint_every=2))


def test_killed_meta_run_resumes_to_the_same_result(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    meta = MetaConfig(meta_algorithm="fomaml", support_shots=1, query_size=2)

    def run(root: Path, resume: bool) -> dict[str, Any]:
        return run_multitask(_checkpointed(_cfg(root, meta=meta)), resume=resume, log=lambda *_: None)

    def other_inner_loop_is_another_run(root: Path) -> None:
        with pytest.raises(TrainingError, match="meta.inner_steps"):
            run_multitask(_checkpointed(_cfg(root, meta=dataclasses.replace(meta, inner_steps=5))), resume=True,
                          log=lambda *_: None)

    run_ = run_interrupted_then_resumed(monkeypatch, run, tmp_path, Cut.at_step(MetaTrainer, 3),
                                       before_resume=other_inner_loop_is_another_run)
    assert_same_tensors(run_.whole["_model"].trainable_state(), run_.resumed["_model"].trainable_state())
    assert run_.whole["dev_curve"] == run_.resumed["dev_curve"]
    assert run_.calls == {"whole": 4, "cut": 4, "resumed": 2}  # steps 2 and 3 again: from the checkpoint at step 2


def test_resume_refuses_another_task_sampling(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def run(root: Path, resume: bool) -> dict[str, Any]:
        return run_multitask(_checkpointed(_cfg(root)), resume=resume, log=lambda *_: None)

    def other_sampling_is_another_run(root: Path) -> None:
        with pytest.raises(TrainingError, match="multitask.sampling"):
            run_multitask(dataclasses.replace(_checkpointed(_cfg(root)), multitask=MultiTaskConfig(sampling="uniform")),
                          resume=True, log=lambda *_: None)

    run_ = run_interrupted_then_resumed(monkeypatch, run, tmp_path, Cut.at_step(MultiTaskTrainer, 3),
                                       before_resume=other_sampling_is_another_run)
    # the same settings resume, to the very result of an uninterrupted run
    assert_same_tensors(run_.whole["_model"].trainable_state(), run_.resumed["_model"].trainable_state())
    assert run_.whole["dev_curve"] == run_.resumed["dev_curve"]
    assert run_.calls == {"whole": 4, "cut": 4, "resumed": 2}


def test_adapt_adds_a_task_and_scores_before_and_after(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    model = run_multitask(_cfg(tmp_path), log=lambda *_: None)["_model"]
    result = adapt_to_task(model, toy_data("toy_phones"), shots=2, steps=2, max_test=None, quiet=True,
                           log=lambda *_: None)
    assert result["task"] == "toy_phones" and result["steps"] == 2
    assert [t.name for t in model.tasks][-1] == "toy_phones"
    with pytest.raises(ConfigError, match="already served"):
        adapt_to_task(model, toy_data("toy_phones"), shots=0, log=lambda *_: None)


def test_cli_errors_are_one_line(toy_tasks: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["train", "--tasks", "toy_movies", "--backbone", "tiny-bert", "--method", "multitask_prompt"]) == 2
    assert "at least two tasks" in capsys.readouterr().err
    assert main(["train", "--tasks", "toy_movies,nope", "--backbone", "tiny-bert", "--method", "multitask_prompt"]) == 2
    assert "nope" in capsys.readouterr().err
    run_multitask(_cfg(tmp_path), log=lambda *_: None)
    adapter = str(tmp_path / "run" / "best")
    assert main(["adapt", "--from", adapter, "--task", "toy_phones", "--backbone", "tiny-llama", "--shots", "0"]) == 2
    assert "made for backbone" in capsys.readouterr().err
    assert main(["adapt", "--from", adapter, "--task", "toy_phones", "--shots", "0", "--max-test", "4"]) == 0
    with pytest.raises(UnknownNameError):
        PromptModel.from_pretrained(adapter).task_index("toy_phones")


def test_adapt_from_a_single_task_classifier_is_refused(bert: Backbone, toy_tasks: list[str],  # noqa: F811
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = PromptModel.build(copy.deepcopy(bert), "prompt_tuning", ["negative", "positive"],
                              method_options={"num_tokens": 3}, task="toy_movies")
    model.save_pretrained(tmp_path / "single")
    assert main(["adapt", "--from", str(tmp_path / "single"), "--task", "toy_phones", "--backbone", "tiny-bert",
                 "--shots", "0"]) == 2
    assert "label_description" in capsys.readouterr().err
    assert (tmp_path / "single" / "adapter_model.safetensors").is_file()  # nothing saved is lost


def test_train_continual_flag_reaches_the_library(toy_tasks: list[str], capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["train", "--continual", "toy_movies", "--backbone", "tiny-bert"]) == 2
    assert "at least two" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["multitask_prompt", "hyperprompt", "prompt_tuning", "p_tuning_v2"])
def test_cross_task_methods_train_on_both_backbones(any_backbone: Backbone, method: str) -> None:
    infos = _infos()
    backbone = copy.deepcopy(any_backbone)
    model = PromptModel.build(backbone, method, infos[0].labels, method_options={"num_tokens": 3}, head=LABEL_HEAD,
                              tasks=infos)
    items = [x for i, info in enumerate(infos) for x in model.encode(toy_data(info.name).pool[:4], i)]
    batch = batches(items, len(items), model.pad_id, model.left_pad)[0]
    out = model(batch)
    assert out.logits.shape == (len(items), 2) and out.loss is not None
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trainable_parameters())
    assert all(p.grad is None for p in backbone.parameters())
