"""The contract every trainer strategy of the table keeps, on the tiny backbone.

For each entry of :data:`promptlearning.training.strategies.STRATEGIES`, a run it serves:
the table selects it for that run and builds its trainer; a few steps train only trainable
parameters (the backbone stays frozen and bit-identical, something trainable moves); and a run
killed after a checkpoint and resumed ends bit-exactly where the uninterrupted run ends,
doing only the steps that were left. A new strategy needs a scenario here (the test says so).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.data.examples import Example
from promptlearning.data.task_info import TaskInfo
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.seeding import seed_everything
from promptlearning.training import TrainConfig
from promptlearning.training.distill import DistillConfig
from promptlearning.training.gate_search import SearchConfig
from promptlearning.training.meta_learning import MetaConfig
from promptlearning.training.strategies import (
    STRATEGIES,
    RunShape,
    TrainerInputs,
    TrainerStrategy,
    select_strategy,
)
from promptlearning.training.trainer import Trainer

from .conftest import toy_examples
from .meta_toys import toy_data
from .resume_helper import Cut, assert_same_tensors, run_interrupted_then_resumed

STEPS, CHECKPOINT_EVERY, CUT_AT = 6, 2, 3  # the kill comes in step 3, after the checkpoint of step 2
TASKS = ["toy_movies", "toy_films"]


@dataclasses.dataclass
class Scenario:
    """A run the strategy serves: its model (built afresh, same seed, every call), options and data."""

    build: Callable[[Backbone], PromptModel]
    sections: dict[str, Any]
    examples: Callable[[], list[list[Example]]]  # training examples per task
    dev: Callable[[], list[list[Example]]]


def _one_task_model(method: str, **options: Any) -> Callable[[Backbone], PromptModel]:
    def build(backbone: Backbone) -> PromptModel:
        return PromptModel.build(backbone, method, ["neg", "pos"], method_options={"num_tokens": 2, **options})

    return build


def _multi_task_model(backbone: Backbone) -> PromptModel:
    infos = [TaskInfo(n, ["negative", "positive"], f"is the {n} text positive or negative?") for n in TASKS]
    return PromptModel.build(backbone, "multitask_prompt", infos[0].labels, method_options={"num_tokens": 3},
                             head=HeadConfig(kind="label_description"), tasks=infos)


def _teacher(root: Path, backbone: Backbone, task: str) -> str:
    """A frozen single-task adapter on disk (untrained is enough for the contract: it guides, it is not judged)."""
    seed_everything(7)
    teacher = PromptModel.build(backbone, "prompt_tuning", ["negative", "positive"], method_options={"num_tokens": 2},
                                task=task)
    teacher.save_pretrained(root / f"teacher_{task}")
    return str(root / f"teacher_{task}")


def scenario(name: str, backbone: Backbone, root: Path) -> Scenario:
    one_task = (lambda: [toy_examples(6, seed=1)], lambda: [toy_examples(2, seed=2)])
    several = (lambda: [toy_data(n).pool[:12] for n in TASKS], lambda: [toy_data(n).test[:4] for n in TASKS])
    if name == "plain":
        return Scenario(_one_task_model("p_tuning_v2"), {}, *one_task)
    if name == "bilevel":
        return Scenario(_one_task_model("spt"), {"search": SearchConfig(budget=1)}, *one_task)
    if name == "multi_task":
        return Scenario(_multi_task_model, {}, *several)
    if name == "meta":
        meta = MetaConfig(meta_algorithm="fomaml", inner_steps=1, support_shots=2, query_size=4)
        return Scenario(_multi_task_model, {"meta": meta}, *several)
    if name == "distillation":
        teachers = {task: _teacher(root, backbone, task) for task in TASKS}
        return Scenario(_multi_task_model, {"distill": DistillConfig(distill_from=teachers)}, *several)
    pytest.fail(f"trainer strategy {name!r} has no scenario in {__file__}: add a run it serves to `scenario`")


def _run(strategy: TrainerStrategy, sc: Scenario, backbone: Backbone, out: Path | None, resume: bool = False,
         steps: int = STEPS) -> PromptModel:
    seed_everything(0)
    model = sc.build(backbone)
    train = [x for i, part in enumerate(sc.examples()) for x in model.encode(part, i)]
    dev = [x for i, part in enumerate(sc.dev()) for x in model.encode(part, i)]
    config = TrainConfig(max_steps=steps, eval_every=CHECKPOINT_EVERY, checkpoint_every=CHECKPOINT_EVERY,
                         batch_size=4, lr=0.05, quiet=True, device="cpu", seed=3)
    inputs = TrainerInputs(model, config, train, dev, out, {}, sc.sections, sc.examples(), lambda *_: None)
    trainer = strategy.make_trainer(inputs)
    assert isinstance(trainer, strategy.trainer)
    trainer.fit(resume=resume)
    return model


@pytest.fixture(params=STRATEGIES, ids=lambda s: s.name)
def strategy(request: pytest.FixtureRequest) -> TrainerStrategy:
    return request.param  # type: ignore[no-any-return]


def test_the_table_selects_the_strategy_for_its_run(strategy: TrainerStrategy, bert: Backbone,
                                                   tmp_path: Path) -> None:
    sc = scenario(strategy.name, bert, tmp_path)
    model = sc.build(copy.deepcopy(bert))
    assert select_strategy(sc.sections, several_tasks=len(model.tasks) > 1, method=model.method) is strategy
    if strategy.config is not None:  # its options have a section, defaults included
        assert strategy.section and isinstance(strategy.options({}), strategy.config)


def test_a_few_steps_train_only_trainable_parameters(strategy: TrainerStrategy, bert: Backbone,
                                                     tmp_path: Path) -> None:
    backbone = copy.deepcopy(bert)
    sc = scenario(strategy.name, backbone, tmp_path)
    frozen_before = {k: v.clone() for k, v in backbone.state_dict().items()}
    seed_everything(0)
    reference = sc.build(backbone)
    before = {n: p.detach().clone() for n, p in reference.named_parameters()}
    trainable = {n for n, p in reference.named_parameters() if p.requires_grad}
    model = _run(strategy, sc, backbone, None, steps=3)
    after = dict(model.named_parameters())
    assert set(after) == set(before)
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved, "a few steps changed nothing"
    assert moved <= trainable, f"frozen parameters changed: {sorted(moved - trainable)}"
    assert not any(p.requires_grad for p in backbone.parameters()), "the backbone was unfrozen"
    assert_same_tensors(frozen_before, backbone.state_dict(), "backbone")


def test_kill_and_resume_ends_where_an_uninterrupted_run_ends(strategy: TrainerStrategy, bert: Backbone,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = copy.deepcopy(bert)
    sc = scenario(strategy.name, backbone, tmp_path)

    def run(directory: Path, resume: bool) -> dict[str, torch.Tensor]:
        return _run(strategy, sc, backbone, directory, resume).trainable_state()

    result = run_interrupted_then_resumed(monkeypatch, run, tmp_path / "runs", Cut.at_step(strategy.trainer, CUT_AT))
    assert_same_tensors(result.whole, result.resumed, f"{strategy.name}: final trainable state")
    assert result.calls["whole"] == STEPS
    done = CUT_AT // CHECKPOINT_EVERY * CHECKPOINT_EVERY  # steps saved by the last checkpoint before the kill
    assert result.calls["resumed"] == STEPS - done, "the resumed run did not continue from the checkpoint"


# ---------------------------------------------------------------------------- a new strategy is one table line
@dataclasses.dataclass
class _EveryOtherConfig:
    stride: int = option(2, "use every stride-th batch (a toy strategy)")


class _EveryOtherTrainer(Trainer):
    def __init__(self, *args: Any, every_other: _EveryOtherConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every_other = every_other


def _wants_every_other(shape: RunShape) -> bool:
    return bool(shape.sections.get("every_other") and shape.sections["every_other"].stride > 2)


def test_a_new_strategy_is_one_table_line(monkeypatch: pytest.MonkeyPatch, bert: Backbone) -> None:
    """Its flags, its section in the experiment config and its selection come from the table alone."""
    from promptlearning.cli.main import build_parser
    from promptlearning.cli.options import experiment_values
    from promptlearning.runs.single_task import with_strategy_sections
    from promptlearning.training import strategies

    new = TrainerStrategy("every_other", _EveryOtherTrainer, "a toy", _EveryOtherConfig, "every_other",
                          applies=_wants_every_other, flag_group="every other batch")
    monkeypatch.setattr(strategies, "STRATEGIES", (*STRATEGIES, new))
    values = experiment_values(build_parser().parse_args(["train", "--task", "mr", "--stride", "3"]))
    assert values["every_other"] == {"stride": 3}

    @with_strategy_sections
    class Experiment:
        pass

    assert dataclasses.fields(dataclasses.dataclass(Experiment))[-1].name == "every_other"
    model = _one_task_model("p_tuning_v2")(copy.deepcopy(bert))
    chosen = strategies.select_strategy({"every_other": _EveryOtherConfig(stride=3)}, False, model.method)
    assert chosen is new
    assert strategies.select_strategy({"every_other": _EveryOtherConfig()}, False, model.method).name == "plain"
    items = model.encode(toy_examples(2))
    trainer = chosen.make_trainer(TrainerInputs(model, TrainConfig(), items, items,
                                                sections={"every_other": _EveryOtherConfig(stride=3)}))
    assert isinstance(trainer, _EveryOtherTrainer) and trainer.every_other.stride == 3
