"""Distilling per-task teacher adapters into a multi-task student (train --tasks ... --distill-from)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from promptlearning.adapters import WEIGHTS_FILE
from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.examples import Example
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.runs.multitask import run_multitask
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.training import TrainConfig
from promptlearning.training.checkpoint import STATE_FILE
from promptlearning.training.distill import (
    DistillConfig,
    DistillTrainer,
    distillation_loss,
    load_teachers,
    parse_teachers,
)

from .meta_toys import toy_data, toy_tasks  # noqa: F401  (fixture)
from .resume_helper import Cut, assert_same_tensors, run_interrupted_then_resumed

TASKS = ["toy_movies", "toy_films"]
LABELS = ["negative", "positive"]
QUIET = lambda *_: None  # noqa: E731


# ---------------------------------------------------------------------------- helpers
def _train_teacher(root: Path, task: str) -> str:
    """A single-task adapter trained the way a user would: `promptlearning train --task TASK --output DIR`."""
    out = root / f"teacher_{task}"
    assert main(["train", "--task", task, "--backbone", "tiny-bert", "--method", "prompt_tuning",
                 "--option", "num_tokens=2", "--shots", "4", "--max-steps", "3", "--quiet", "--no-baseline",
                 "--output", str(out)]) == 0
    return str(out / "best")


def _cfg(root: Path, teachers: dict[str, str] | None = None, weight: float = 1.0, **train: object) -> ExperimentConfig:
    settings: dict[str, object] = {"max_steps": 4, "eval_every": 2, "quiet": True, "batch_size": 4, **train}
    cfg = ExperimentConfig(backbone="tiny-bert", method="multitask_prompt", method_options={"num_tokens": 3},
                           tasks=list(TASKS), output_dir=str(root / "run"), train=TrainConfig(**settings),  # type: ignore[arg-type]
                           distill=DistillConfig(distill_from=teachers, distill_weight=weight))
    cfg.data.shots = 4
    return cfg


def _student(backbone: Backbone, method: str = "multitask_prompt") -> PromptModel:
    infos = [TaskInfo(n, list(LABELS), f"is the {n} text positive or negative?") for n in TASKS]
    return PromptModel.build(backbone, method, LABELS, method_options={"num_tokens": 3},
                             head=HeadConfig(kind="label_description"), tasks=infos)


def _examples() -> list[list[Example]]:
    return [toy_data(name).pool for name in TASKS]


def _trainer(student: PromptModel, teachers_from: dict[str, str], weight: float = 1.0,
             **train: object) -> DistillTrainer:
    examples = _examples()
    distill = DistillConfig(distill_from=teachers_from, distill_weight=weight)
    teachers = load_teachers(distill, student.backbone, student.tasks, examples, QUIET)
    items = [x for i, part in enumerate(examples) for x in student.encode(part, i)]
    settings: dict[str, object] = {"max_steps": 1, "quiet": True, "batch_size": 8, "device": "cpu", **train}
    return DistillTrainer(student, TrainConfig(**settings), items, [], distill=distill,  # type: ignore[arg-type]
                          teachers=teachers)


def _kl_on_task(trainer: DistillTrainer, task_id: int) -> float:
    """Mean distillation loss (T^2 KL at the trainer's temperature) over every training row of one task."""
    teacher = next(t for t in trainer.teachers if t.task_id == task_id)
    rows = trainer.groups[task_id]
    from promptlearning.data.batching import batches

    model = trainer.model
    with torch.no_grad():
        student = model(batches([trainer.train_items[i] for i in rows], len(rows), model.pad_id)[0]).logits
        target = teacher.model(batches(teacher.items, len(rows), teacher.model.pad_id)[0]).logits
    return float(distillation_loss(student[:, :teacher.num_labels], target, trainer.distill.distill_temperature))


# ---------------------------------------------------------------------------- the loss itself
def test_distillation_loss_is_temperature_scaled_kl() -> None:
    student, teacher = torch.randn(5, 3), torch.randn(5, 3)
    assert distillation_loss(teacher.clone(), teacher, 2.0).item() == 0.0
    p, log_q = (teacher / 2).softmax(-1), (student / 2).log_softmax(-1)
    expected = 4.0 * (p * (p.log() - log_q)).sum(-1).mean()
    assert torch.allclose(distillation_loss(student, teacher, 2.0), expected, atol=1e-6)
    with pytest.raises(TrainingError, match="differ"):
        distillation_loss(student, teacher[:, :2], 2.0)


def test_teacher_lists_parse_and_bad_ones_are_refused() -> None:
    assert parse_teachers("cr=runs/cr/best, mr = runs/mr/best") == {"cr": "runs/cr/best", "mr": "runs/mr/best"}
    assert DistillConfig(distill_from="cr=a").teachers == {"cr": "a"}
    for text, fix in (("cr", "TASK=ADAPTER"), ("cr=a,cr=b", "twice"), ("=a", "TASK=ADAPTER")):
        with pytest.raises(ConfigError, match=fix):
            DistillConfig(distill_from=text)
    with pytest.raises(ConfigError, match="distill_weight"):
        DistillConfig(distill_weight=-1.0)
    with pytest.raises(ConfigError, match="distill_temperature"):
        DistillConfig(distill_temperature=0.0)


# ---------------------------------------------------------------------------- (b) zero for an identical teacher
def test_loss_is_zero_when_the_student_is_its_teacher_and_positive_otherwise(any_backbone: Backbone,
                                                                               tmp_path: Path) -> None:
    student = _student(copy.deepcopy(any_backbone))
    torch.manual_seed(0)
    with torch.no_grad():  # the tasks' prompts differ, so reading a row with the wrong task's prompt would show
        student.method.task_u.normal_(std=3.0)
        student.method.task_v.normal_(std=3.0)
    student.save_pretrained(tmp_path / "same")
    trainer = _trainer(student, {name: str(tmp_path / "same") for name in TASKS})
    assert [t.teacher_task_id for t in trainer.teachers] == [0, 1]  # each task read from its own slot
    student.train()
    for step in range(3):  # mixed-task batches: rows of both tasks, padded differently from the teacher's
        batch = trainer.batch_at(step)
        assert len(set(batch.task_ids.tolist())) > 1
        loss = trainer.extra_loss(batch, student(batch).logits, step)
        assert loss is not None and abs(loss.item()) < 1e-9  # float noise at most (it is 0.0 here)
    torch.manual_seed(0)
    with torch.no_grad():  # the tiny random backbone barely listens to its prompt: the KL is small but clear
        student.method.shared.add_(torch.randn_like(student.method.shared))
    batch = trainer.batch_at(0)
    loss = trainer.extra_loss(batch, student(batch).logits, 0)
    assert loss is not None and loss.item() > 1e-6
    assert loss.requires_grad  # it trains the student ...
    assert not any(p.requires_grad for t in trainer.teachers for p in t.model.parameters())  # ... never a teacher


def test_rows_without_a_teacher_add_nothing(bert: Backbone, tmp_path: Path) -> None:
    student = _student(copy.deepcopy(bert))
    student.save_pretrained(tmp_path / "same")
    with torch.no_grad():
        student.method.shared.add_(torch.randn_like(student.method.shared))
    trainer = _trainer(student, {"toy_films": str(tmp_path / "same")})
    only_movies = next(s for s in range(200) if set(trainer.batch_at(s).task_ids.tolist()) == {0})
    batch = trainer.batch_at(only_movies)
    assert trainer.extra_loss(batch, student(batch).logits, only_movies) is None
    mixed = next(s for s in range(200) if set(trainer.batch_at(s).task_ids.tolist()) == {0, 1})
    batch = trainer.batch_at(mixed)
    films = batch.task_ids == 1
    loss = trainer.extra_loss(batch, student(batch).logits, mixed)
    # averaged over the rows that have a teacher: the film rows alone give the same number
    teacher = trainer.teachers[0]
    rows = [r for r, keep in zip(trainer.rows_at(mixed), films.tolist(), strict=True) if keep]
    from promptlearning.data.batching import batches

    with torch.no_grad():
        target = teacher.model(batches([trainer.teacher_rows[r] for r in rows], len(rows), 0)[0]).logits
    expected = distillation_loss(student(batch).logits[films][:, :2], target, 2.0)
    assert loss is not None and torch.allclose(loss, expected, atol=1e-6)


# ---------------------------------------------------------------------------- (c) the student moves toward the teacher
@pytest.mark.parametrize("method", ["multitask_prompt", "p_tuning_v2"])
def test_training_with_a_strong_weight_pulls_the_student_toward_the_teacher(bert: Backbone, tmp_path: Path,
                                                                            method: str) -> None:
    backbone = copy.deepcopy(bert)
    torch.manual_seed(0)
    teacher = PromptModel.build(backbone, "prompt_tuning", LABELS, method_options={"num_tokens": 2}, task="toy_movies")
    with torch.no_grad():  # a teacher with its own opinion, not the labels'
        teacher.head.linear.weight.normal_(std=0.3)
    teacher.save_pretrained(tmp_path / "teacher")
    results = {}
    for weight in (0.0, 20.0):
        student = _student(backbone, method)
        trainer = _trainer(student, {"toy_movies": str(tmp_path / "teacher")}, weight=weight, max_steps=30, lr=0.3,
                           warmup_ratio=0.0)
        before = _kl_on_task(trainer, 0)
        trainer.fit()
        results[weight] = (before, _kl_on_task(trainer, 0))
    (start, plain), (start_again, distilled) = results[0.0], results[20.0]
    assert start == start_again  # both students start from the same weights
    # the tiny random backbone listens little to its prompt, so the moves are modest but clear
    assert distilled < 0.97 * start, results
    assert distilled < plain, results  # and it is the distillation term that moves it


# ---------------------------------------------------------------------------- (a), (e) and resume through run_multitask
def test_weight_zero_trains_bit_identically_to_no_distillation(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    teachers = {name: _train_teacher(tmp_path, name) for name in TASKS}
    plain = run_multitask(_cfg(tmp_path / "plain"), log=QUIET)
    zero = run_multitask(_cfg(tmp_path / "zero", teachers, weight=0.0), log=QUIET)
    strong = run_multitask(_cfg(tmp_path / "strong", teachers, weight=10.0), log=QUIET)
    a, b, c = (r["_model"].trainable_state() for r in (plain, zero, strong))
    assert set(a) == set(b) == set(c)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain["dev_curve"] == zero["dev_curve"]
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the term does change training when it has weight


def test_the_saved_student_holds_no_teacher_tensors(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    teachers = {name: _train_teacher(tmp_path, name) for name in TASKS}
    plain = run_multitask(_cfg(tmp_path / "plain"), log=QUIET)
    distilled = run_multitask(_cfg(tmp_path / "distilled", teachers), log=QUIET)
    assert distilled["trainable_params"] == plain["trainable_params"]
    for part in ("best/" + WEIGHTS_FILE, "checkpoint/" + STATE_FILE):
        mine = load_file(str(tmp_path / "distilled" / "run" / part))
        theirs = load_file(str(tmp_path / "plain" / "run" / part))
        assert {k: v.shape for k, v in mine.items()} == {k: v.shape for k, v in theirs.items()}, part
    teacher_keys = set(load_file(str(Path(teachers["toy_movies"]) / WEIGHTS_FILE)))
    student_keys = set(load_file(str(tmp_path / "distilled" / "run" / "best" / WEIGHTS_FILE)))
    assert teacher_keys - student_keys  # the teacher's own prompt (method.prompt) never enters the student
    loaded = PromptModel.from_pretrained(tmp_path / "distilled" / "run" / "best", backbone=distilled["_model"].backbone)
    assert loaded.num_trainable() == plain["_model"].num_trainable()


def test_killed_distillation_run_resumes_to_the_same_result(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    teachers = {"toy_movies": _train_teacher(tmp_path, "toy_movies")}

    def run(root: Path, resume: bool) -> dict[str, object]:
        return run_multitask(_cfg(root, teachers, checkpoint_every=2), resume=resume, log=QUIET)

    def another_weight_is_another_run(root: Path) -> None:
        other = DistillConfig(distill_from=teachers, distill_weight=2.0)
        with pytest.raises(TrainingError, match="distill"):
            run_multitask(dataclasses.replace(_cfg(root, teachers, checkpoint_every=2), distill=other), resume=True,
                          log=QUIET)

    run_ = run_interrupted_then_resumed(monkeypatch, run, tmp_path / "runs", Cut.at_step(DistillTrainer, 3),
                                       before_resume=another_weight_is_another_run)
    assert_same_tensors(run_.whole["_model"].trainable_state(), run_.resumed["_model"].trainable_state())  # type: ignore[attr-defined]
    assert run_.whole["dev_curve"] == run_.resumed["dev_curve"]
    assert run_.calls == {"whole": 4, "cut": 4, "resumed": 2}  # steps 2 and 3 again: from the checkpoint at step 2


# ---------------------------------------------------------------------------- (d) one-line errors from the CLI
STUDENT = ["train", "--tasks", "toy_movies,toy_films", "--backbone", "tiny-bert", "--method", "multitask_prompt",
           "--option", "num_tokens=3", "--shots", "4", "--max-steps", "1", "--quiet"]


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_teachers_are_one_line_errors(toy_tasks: list[str], bert: Backbone, llama: Backbone,  # noqa: F811
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _train_teacher(tmp_path, "toy_movies")
    capsys.readouterr()
    # a teacher for a task that is not trained
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_phones={good}"], capsys)
    assert "toy_phones" in err and "not in --tasks" in err
    # a path that does not exist, a file, a directory that is no adapter, a run directory
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={tmp_path / 'nowhere'}"], capsys)
    assert "teacher of toy_movies" in err and "does not exist" in err
    (tmp_path / "notes.txt").write_text("hello")
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={tmp_path / 'notes.txt'}"], capsys)
    assert "is a file" in err
    (tmp_path / "empty").mkdir()
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={tmp_path / 'empty'}"], capsys)
    assert "teacher of toy_movies" in err and "not an adapter" in err
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={Path(good).parent}"], capsys)
    assert "is a run directory" in err and "best" in err
    # a teacher made for another backbone: the adapter loader's message surfaces
    on_llama = PromptModel.build(copy.deepcopy(llama), "prompt_tuning", LABELS, method_options={"num_tokens": 2},
                                 task="toy_movies")
    on_llama.save_pretrained(tmp_path / "llama_teacher")
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={tmp_path / 'llama_teacher'}"], capsys)
    assert "teacher of toy_movies" in err and "made for backbone 'tiny-llama'" in err
    # a teacher whose labels are not the task's
    other = PromptModel.build(copy.deepcopy(bert), "prompt_tuning", ["bad", "good"], method_options={"num_tokens": 2},
                              task="toy_movies")
    other.save_pretrained(tmp_path / "other_labels")
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={tmp_path / 'other_labels'}"], capsys)
    assert "['bad', 'good']" in err and "['negative', 'positive']" in err
    # a teacher that fine-tuned the (shared) backbone
    tuned = PromptModel.build(copy.deepcopy(bert), "finetune", LABELS, task="toy_movies")
    tuned.save_pretrained(tmp_path / "finetuned")
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={tmp_path / 'finetuned'}"], capsys)
    assert "fine-tunes the backbone" in err
    # --distill-from without --tasks, a malformed list, and with meta-learning
    err = _one_line_error(["train", "--task", "toy_movies", "--backbone", "tiny-bert", "--distill-from",
                           f"toy_movies={good}"], capsys)
    assert "needs --tasks" in err
    err = _one_line_error([*STUDENT, "--distill-from", good], capsys)
    assert "TASK=ADAPTER" in err
    err = _one_line_error([*STUDENT, "--distill-from", f"toy_movies={good}", "--meta-algorithm", "fomaml"], capsys)
    assert "--meta-algorithm" in err
    # and the good teacher trains
    assert main([*STUDENT, "--distill-from", f"toy_movies={good}", "--output", str(tmp_path / "ok")]) == 0


def test_distillation_options_come_from_yaml(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    from promptlearning.cli.main import build_parser, experiment_from

    good = _train_teacher(tmp_path, "toy_films")
    config = tmp_path / "run.yaml"
    config.write_text(f"tasks: [toy_movies, toy_films]\nbackbone: tiny-bert\nmethod: multitask_prompt\n"
                      f"distill:\n  distill_from: {{toy_films: {good}}}\n  distill_weight: 0.5\n")
    cfg = experiment_from(build_parser().parse_args(["train", "--config", str(config)]))
    assert cfg.distill.teachers == {"toy_films": good} and cfg.distill.distill_weight == 0.5
    cfg = experiment_from(build_parser().parse_args(["train", "--config", str(config), "--distill-temperature", "4"]))
    assert cfg.distill.distill_temperature == 4.0 and cfg.distill.distill_weight == 0.5
    config.write_text("distill:\n  distill_weigth: 0.5\n")
    with pytest.raises(ConfigError, match="distill_weigth"):
        experiment_from(build_parser().parse_args(["train", "--config", str(config)]))
