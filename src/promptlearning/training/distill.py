"""Distilling per-task teacher adapters into a multi-task student.

A strategy over the multi-task trainer: every row whose task has a teacher (a frozen adapter
trained on that task alone, e.g. by ``promptlearning train --task cr --output runs/cr``) adds

    weight * T^2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T))

over that task's classes, averaged over the rows that have a teacher; rows without one add
nothing. The student's logits of a mixed-task batch are (B, C_max) with the slots a row's
task lacks masked (the label-description head), so each task compares only its first C_t
columns, which hold its labels in the task's order in both models.

Teachers share the student's backbone object (it is frozen), run in eval mode under
``no_grad`` on the rows of their task, re-encoded with their own template and length, and
are no submodule of the student: they add no trainable parameter and nothing of them is
saved in the student's adapter or checkpoint. They are deterministic, so exact resume needs
only their paths and weights' digests, which the checkpoint's run fingerprint records.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.data.examples import Example
from promptlearning.errors import AdapterError, ConfigError, PromptLearningError, TrainingError
from promptlearning.model import PromptModel
from promptlearning.training.multitask import MultiTaskTrainer
from promptlearning.training.trainer import TrainResult


def parse_teachers(text: str) -> dict[str, str]:
    """``"cr=runs/cr/best,mr=runs/mr/best"`` -> ``{"cr": "runs/cr/best", "mr": "runs/mr/best"}``."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        task, sep, path = (s.strip() for s in part.partition("="))
        if not sep or not task or not path:
            raise ConfigError(f"--distill-from entry {part!r} is not TASK=ADAPTER; write e.g. "
                              "--distill-from cr=runs/cr/best,mr=runs/mr/best")
        if task in out:
            raise ConfigError(f"--distill-from names task {task!r} twice; give one teacher per task")
        out[task] = path
    return out


@dataclass
class DistillConfig:
    distill_from: dict[str, str] | str | None = option(
        None, "per-task teachers TASK=ADAPTER,... (adapters of `train --task TASK`) distilled into the --tasks student")
    distill_weight: float = option(1.0, "weight of the distillation term (0: teachers are loaded but add nothing)")
    distill_temperature: float = option(2.0, "softmax temperature T of distillation; the term is scaled by T^2")

    def __post_init__(self) -> None:
        if isinstance(self.distill_from, str):
            self.distill_from = parse_teachers(self.distill_from)
        if self.distill_from is not None and not all(k and v for k, v in self.distill_from.items()):
            raise ConfigError("distill_from maps task names to adapter directories; neither may be empty")
        if self.distill_weight < 0:
            raise ConfigError(f"distill_weight must be >= 0 (got {self.distill_weight})")
        if self.distill_temperature <= 0:
            raise ConfigError(f"distill_temperature must be > 0 (got {self.distill_temperature})")

    @property
    def teachers(self) -> dict[str, str]:
        """Task name -> adapter directory (empty: no distillation)."""
        assert not isinstance(self.distill_from, str)  # parsed in __post_init__
        return dict(self.distill_from or {})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over rows.

    ``student`` and ``teacher`` are (N, C) logits over the same classes in the same order;
    the teacher's side carries no gradient."""
    if student.shape != teacher.shape:
        raise TrainingError(f"student logits {tuple(student.shape)} and teacher logits {tuple(teacher.shape)} differ")
    log_q = F.log_softmax(student.float() / temperature, dim=-1)  # (N, C)
    log_p = F.log_softmax(teacher.detach().float() / temperature, dim=-1)  # (N, C)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    return temperature ** 2 * kl


@dataclass
class Teacher:
    """A frozen adapter that guides the student on one task."""

    task: str  # the task's name
    task_id: int  # the task's row id in the student
    model: PromptModel  # eval mode, no trainable parameters, shares the student's backbone
    teacher_task_id: int  # the task's row id in the teacher
    path: str
    digest: str  # sha256 of the teacher's weights: a changed teacher refuses --resume
    items: list[Encoded]  # the task's training rows in the teacher's own encoding, in the student's order

    @property
    def num_labels(self) -> int:
        return len(self.model.tasks[self.teacher_task_id].labels)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_teacher(task: str, path: str, backbone: Backbone, task_id: int, labels: Sequence[str],
                 train: Sequence[Example], log: Callable[[str], Any] = print) -> Teacher:
    """Load one teacher on the student's backbone, check it fits ``task``, freeze it."""
    from promptlearning.adapters import WEIGHTS_FILE, read_adapter_config
    from promptlearning.methods import get_method

    where = f"teacher of {task} ({path})"
    directory = Path(path)
    if directory.is_file():
        raise AdapterError(f"{where} is a file, not an adapter directory; give the folder train --output wrote "
                           "(its best/ subfolder)")
    try:
        fine_tunes = get_method(str(read_adapter_config(directory)["method"])).trains_backbone
        # the loader checks the backbone's identity and shapes; its message names the right one
        model = None if fine_tunes else PromptModel.from_pretrained(directory, backbone=backbone)
    except PromptLearningError as exc:
        raise AdapterError(f"{where}: {exc}") from exc
    if model is None:
        raise ConfigError(f"{where} fine-tunes the backbone, which the student shares frozen; "
                          "distil from prompt adapters (any method but finetune)")
    served = [t.name for t in model.tasks]
    if task in served:
        index = served.index(task)
    elif len(served) == 1:
        index = 0
        log(f"note: the teacher of {task} was trained on task {served[0]!r}")
    else:
        raise ConfigError(f"{where} serves tasks {', '.join(served)} but not {task}; give an adapter trained on {task}")
    if list(model.tasks[index].labels) != list(labels):
        raise ConfigError(f"{where} predicts labels {list(model.tasks[index].labels)} but task {task} has "
                          f"{list(labels)}; give a teacher trained on {task}")
    for p in [*model.method.parameters(), *model.head.parameters()]:
        p.requires_grad_(False)
    model.eval()
    return Teacher(task=task, task_id=task_id, model=model, teacher_task_id=index, path=str(path),
                   digest=_file_digest(directory / WEIGHTS_FILE), items=model.encode(list(train), index))


def load_teachers(config: DistillConfig, backbone: Backbone, tasks: Sequence[Any],
                  train: Sequence[Sequence[Example]], log: Callable[[str], Any] = print) -> list[Teacher]:
    """The teachers ``config`` names, for the student's ``tasks`` (TaskInfo) and their training examples."""
    names = [t.name for t in tasks]
    unknown = sorted(set(config.teachers) - set(names))
    if unknown:
        raise ConfigError(f"--distill-from names task(s) {', '.join(unknown)} not in --tasks ({', '.join(names)}); "
                          "give teachers only for tasks being trained")
    return [load_teacher(name, config.teachers[name], backbone, i, tasks[i].labels, train[i], log)
            for i, name in enumerate(names) if name in config.teachers]


class DistillTrainer(MultiTaskTrainer):
    """The multi-task trainer plus the teachers' distillation term (see the module docstring)."""

    def __init__(self, *args: Any, distill: DistillConfig, teachers: Sequence[Teacher], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.model.method.trains_backbone:
            raise ConfigError(f"method {type(self.model.method).name} fine-tunes the backbone the teachers share; "
                              "distil into a prompt method")
        if len(self.model.tasks) > 1 and not self.model.head.serves_many_tasks:
            # the comparison reads a task's labels from the first C_t logits of its rows, as multi-task heads lay them out
            raise ConfigError(f"the student's {self.model.head.kind} head serves one task; distil into a multi-task "
                              "student with --head label_description (or --head verbalizer on a causal LM)")
        self.distill = distill
        self.teachers = list(teachers)
        # each training row's teacher-encoded twin: the k-th row of a task is the teacher's k-th item
        self.teacher_rows: dict[int, Encoded] = {}
        for teacher in self.teachers:
            rows = self.groups.get(teacher.task_id, [])
            if len(rows) != len(teacher.items) or any(self.train_items[i].label != x.label
                                                      for i, x in zip(rows, teacher.items, strict=False)):
                raise TrainingError(f"the teacher of {teacher.task} was given other training rows than the student; "
                                    "encode the same examples for both")
            student_labels = len(self.model.tasks[teacher.task_id].labels)
            if teacher.num_labels != student_labels:
                raise ConfigError(f"the teacher of {teacher.task} has {teacher.num_labels} labels, the student "
                                  f"{student_labels}; give a teacher trained on {teacher.task}")
            for i, item in zip(rows, teacher.items, strict=True):
                self.teacher_rows[i] = item
        self._last_part: torch.Tensor | None = None  # this rank's part of the last teacher step's term
        self._last: float | None = None  # the whole batch's term at that step, summed over the ranks
        self._teacher_tasks = {t.task_id for t in self.teachers}

    def fit(self, resume: bool = False) -> TrainResult:
        for teacher in self.teachers:
            teacher.model.to(self.device).eval()
        return super().fit(resume)

    def extra_loss(self, batch: Batch, logits: torch.Tensor, step: int) -> torch.Tensor | None:
        if self.distill.distill_weight == 0 or not self.teachers:
            return None
        rows = self.local_rows(step)  # this process's rows of the batch, in order (a pure function of the step)
        # the whole batch's teacher rows (every rank computes the same count from the step alone)
        everyone = sum(1 for i in self.rows_at(step) if self.train_items[i].task_id in self._teacher_tasks)
        if everyone == 0:
            return None
        total, count = logits.new_zeros((), dtype=torch.float32), 0
        for teacher in self.teachers:
            positions = [j for j, i in enumerate(rows) if self.train_items[i].task_id == teacher.task_id]
            if not positions:
                continue
            twins = [self.teacher_rows[rows[j]] for j in positions]
            sub = batches(twins, len(twins), teacher.model.pad_id, teacher.model.left_pad)[0]
            sub = dataclasses.replace(sub, labels=None).to(self.device)
            classes = teacher.num_labels
            with torch.no_grad():
                target = teacher.model(sub).logits[:, :classes]  # (b, C_t)
            index = torch.tensor(positions, device=logits.device)
            student = logits[index, :classes]  # (b, C_t): the task's labels, other tasks' slots dropped
            total = total + distillation_loss(student, target, self.distill.distill_temperature) * len(positions)
            count += len(positions)
        # this rank's part of the batch's mean term; the parts of all ranks sum to it (see sync_extra_record)
        self._last_part = self.distill.distill_weight * total.detach() / everyone
        if count == 0:
            return None
        denominator: float = count
        if self.parallel.active:
            # the term is a mean over the whole batch's teacher rows; the trainer weights this process's loss
            # by its share of the batch's rows, so divide by that share of the whole batch's count
            share = self.batch_share(step)
            if share == 0:
                return total * 0.0
            denominator = everyone * share
        return self.distill.distill_weight * total / denominator

    def sync_extra_record(self) -> None:
        """The logged term is the batch's, not rank 0's part: sum the last teacher step's parts over the ranks."""
        super().sync_extra_record()
        if self._last_part is None:
            self._last = None
            return
        self._last = float(self.parallel.reduce_sum([self._last_part], 1.0)[0])

    def extra_record(self) -> dict[str, Any]:
        record = super().extra_record()
        if self._last is not None:
            record["distill_loss"] = round(self._last, 6)
        return record

    def _fingerprint(self) -> dict[str, Any]:
        return {**super()._fingerprint(), "distill": {
            **self.distill.to_dict(), "teachers": {t.task: {"path": t.path, "weights": t.digest} for t in self.teachers}}}
