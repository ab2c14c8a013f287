"""Continual prompt learning: meet tasks one at a time, keep every task's prompt in a library.

For each new task: represent it (its support examples, or its description, through the bare
backbone), start its prompt from the best-matching stored prompt(s), train it (prompt tuning,
16 shots by default), store it, then evaluate every earlier task with its stored adapter.
Because each task keeps its own prompt and the backbone is frozen, the library cannot forget;
the table checks exactly that, from the files on disk.

Two comparisons, each optional:

* **scratch**: the new task trained from the method's usual initialisation, to measure what
  the library start gains;
* **sequential**: one shared prompt carried from task to task (each task keeps only its own
  head), the usual way to see forgetting: earlier tasks are re-scored with the latest prompt.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from promptlearning.backbones import DEFAULT_BACKBONE, Backbone
from promptlearning.configs import check_at_least, check_max_length, option
from promptlearning.data import few_shot_split, get_task, load_task
from promptlearning.data.batching import Encoded
from promptlearning.data.task_info import REPR_KINDS, TaskInfo, task_representation
from promptlearning.errors import ConfigError
from promptlearning.fileio import write_json
from promptlearning.methods.protocols import SoftPrompt, soft_prompt_of
from promptlearning.model import PromptModel
from promptlearning.runs.prompt_library import PromptLibrary
from promptlearning.training import TrainConfig, Trainer
from promptlearning.training.metrics import evaluate

INITS = ("nearest", "mix")
METHOD = "prompt_tuning"


@dataclass
class ContinualConfig:
    backbone: str = option(DEFAULT_BACKBONE, "backbone every task shares")
    shots: int = option(16, "K training (and dev) examples per class")
    data_seed: int = option(13, "seed of the few-shot splits")
    seed: int = option(42, "training seed")
    steps: int = option(60, "training steps per task")
    num_tokens: int = option(20, "prompt length P")
    lr: float | None = option(None, "learning rate of the prompt (default: prompt tuning's own)")
    batch_size: int = option(8, "training batch size")
    eval_every: int = option(20, "dev evaluation interval (the best-on-dev prompt is kept)")
    max_length: int = option(64, "max input tokens")
    max_test: int | None = option(None, "score each task on a fixed random subset of N test examples")
    repr_kind: str = option("support", "task representation: support (K examples) or description")
    init: str = option("nearest", "library start: nearest (the best-matching prompt) or mix "
                                "(similarity-weighted mean of the top-k prompts)")
    top_k: int = option(2, "how many stored prompts init=mix averages")
    scratch: bool = option(True, "also train every task from scratch for comparison")
    sequential: bool = option(False, "also run the forgetting baseline: one prompt carried across tasks")
    library: str | None = option(None, "library directory (kept, reused by later runs; default: <output>/library)")
    output_dir: str | None = option(None, "where the library, continual.json and continual.md go")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        if self.shots < 1 or self.steps < 1 or self.num_tokens < 1 or self.top_k < 1:
            raise ConfigError("shots, steps, num_tokens and top_k must be >= 1")
        check_at_least(1, batch_size=self.batch_size, eval_every=self.eval_every, max_test=self.max_test)
        check_max_length(self.max_length)
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number (got {self.lr!r})")
        if self.repr_kind not in REPR_KINDS:
            raise ConfigError(f"unknown task representation {self.repr_kind!r}; choose one of: {', '.join(REPR_KINDS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown library start {self.init!r}; choose one of: {', '.join(INITS)}")


@dataclass
class TaskRow:
    task: str
    init_from: list[tuple[str, float]]  # stored tasks the prompt started from, with cosine similarity
    library_accuracy: float
    scratch_accuracy: float | None = None
    sequential_accuracy: float | None = None


@dataclass
class ContinualResult:
    tasks: list[str]
    rows: list[TaskRow]
    # accuracy[i][j]: test accuracy on task j (j <= i) after task i was learned
    accuracy: list[list[float]]
    sequential_accuracy: list[list[float]] | None = None
    library: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_tasks(tasks: Sequence[str]) -> list[str]:
    """Validate the task list before any training: known names, no repeats, at least two."""
    names = [t.strip() for t in tasks if t.strip()]
    if len(names) < 2:
        raise ConfigError(f"continual learning needs at least two tasks (got {names}); give e.g. mr,cr,subj")
    repeated = sorted({t for t in names if names.count(t) > 1})
    if repeated:
        raise ConfigError(f"task(s) {', '.join(repeated)} appear more than once; list each task once")
    for name in names:
        get_task(name)  # raises UnknownNameError naming the valid tasks
    return names


def start_prompt(library: PromptLibrary, query: torch.Tensor, cfg: ContinualConfig, exclude: str,
                 shape: torch.Size) -> tuple[torch.Tensor | None, list[tuple[str, float]]]:
    """The library's starting prompt for a task: the nearest stored prompt, or a similarity-weighted
    mean of the top-k (weights proportional to positive cosine similarity). None when nothing fits."""
    candidates = [e for e in library.entries if e.name != exclude and e.repr_kind == cfg.repr_kind]
    if not candidates:
        return None, []
    matches = library.nearest(query, k=1 if cfg.init == "nearest" else cfg.top_k, repr_kind=cfg.repr_kind,
                              exclude=[exclude])
    prompts, used = [], []
    for entry, sim in matches:
        prompt = library.prompt_state(entry.name).get("prompt")
        if prompt is not None and prompt.shape == shape:
            prompts.append(prompt.float())
            used.append((entry.name, sim))
    if not prompts:
        return None, []
    weights = torch.tensor([max(s, 0.0) for _, s in used])
    if weights.sum() <= 0:
        weights = torch.ones(len(used))
    weights = weights / weights.sum()
    return (weights.view(-1, 1, 1) * torch.stack(prompts)).sum(0), used  # (P, H)


def soft_prompt(model: PromptModel) -> SoftPrompt:
    """The model's method as a soft prompt: what the library stores, starts from and carries across tasks."""
    return soft_prompt_of(model.method, "continual learning")


class _Runner:
    """Builds, trains and scores prompt-tuning models for one continual run."""

    def __init__(self, cfg: ContinualConfig, backbone: Backbone) -> None:
        self.cfg, self.backbone = cfg, backbone
        self.items: dict[str, tuple[list[Encoded], list[Encoded], list[Encoded]]] = {}
        self.info: dict[str, TaskInfo] = {}
        self.support: dict[str, Any] = {}

    def prepare(self, name: str) -> None:
        from promptlearning.runs.single_task import test_subset

        data = load_task(name)
        split = few_shot_split(data, self.cfg.shots, self.cfg.data_seed)
        test = split.test if self.cfg.max_test is None else test_subset(split.test, self.cfg.max_test)
        self.info[name] = TaskInfo(name, list(data.labels), data.description)
        self.support[name] = split.train
        model = self.build(name)
        self.items[name] = (model.encode(split.train), model.encode(split.dev), model.encode(test))

    def build(self, name: str, prompt: torch.Tensor | None = None) -> PromptModel:
        model = PromptModel.build(self.backbone, METHOD, self.info[name].labels,
                                  method_options={"num_tokens": self.cfg.num_tokens}, task=name,
                                  max_length=self.cfg.max_length)
        if prompt is not None:
            soft_prompt(model).set_soft_prompt(prompt)
        return model

    def train(self, model: PromptModel, name: str) -> PromptModel:
        train, dev, _ = self.items[name]
        config = TrainConfig(max_steps=self.cfg.steps, lr=self.cfg.lr, batch_size=self.cfg.batch_size,
                             eval_every=self.cfg.eval_every, checkpoint_every=0, seed=self.cfg.seed,
                             device=self.cfg.device, quiet=True)
        Trainer(model, config, train, dev).fit()
        return model

    def score(self, model: PromptModel, name: str) -> float:
        return float(evaluate(model, self.items[name][2])["accuracy"])


def run_continual(tasks: Sequence[str], config: ContinualConfig | None = None, *, backbone: Backbone | None = None,
                  log: Callable[[str], None] = print) -> ContinualResult:
    """Learn ``tasks`` in order with a prompt library; return (and print) the tables."""
    cfg = config or ContinualConfig()
    names = check_tasks(tasks)
    if backbone is None:
        from promptlearning.runs.single_task import shared_backbone

        backbone = shared_backbone(cfg.backbone)
    out = Path(cfg.output_dir) if cfg.output_dir else None
    library_dir = Path(cfg.library) if cfg.library else (out / "library" if out else None)
    if library_dir is None:
        raise ConfigError("continual learning needs a place for its prompt library; give --library DIR or --output DIR")
    if out is not None:
        check_output_folder(out)
    library = PromptLibrary.open(library_dir)
    library.check_backbone(backbone)
    runner = _Runner(cfg, backbone)
    rows: list[TaskRow] = []
    accuracy: list[list[float]] = []
    seq_accuracy: list[list[float]] = []
    shared: torch.Tensor | None = None  # the sequential baseline's prompt
    heads: dict[str, dict[str, torch.Tensor]] = {}
    started = time.perf_counter()
    for i, name in enumerate(names):
        runner.prepare(name)
        info = runner.info[name]
        rep = task_representation(cfg.repr_kind, backbone, info, runner.support[name])
        model = runner.build(name)
        init, used = start_prompt(library, rep, cfg, name, soft_prompt(model).soft_prompt().shape)
        log(f"[{i + 1}/{len(names)}] {name}: "
            + (f"starting from {', '.join(f'{n} (cos {s:.3f})' for n, s in used)}" if used else "no stored prompt fits; "
               "starting from the usual initialisation"))
        model = runner.train(runner.build(name, init), name)
        row = TaskRow(name, used, runner.score(model, name))
        if cfg.scratch:
            row.scratch_accuracy = (row.library_accuracy if init is None
                                    else runner.score(runner.train(runner.build(name), name), name))
        library.add(info, rep, model, cfg.repr_kind, {"test_accuracy": row.library_accuracy})
        if cfg.sequential:
            if shared is None and init is None and i == 0:
                seq_model = model  # the same run: same start, same seed
            else:
                seq_model = runner.train(runner.build(name, shared), name)
            shared = soft_prompt(seq_model).soft_prompt()
            heads[name] = {k: v.detach().clone() for k, v in seq_model.head.state_dict().items()}
            row.sequential_accuracy = runner.score(seq_model, name)
        # every task met so far, scored from what is stored (the library) or carried (sequential)
        accuracy.append([runner.score(library.load_model(n, backbone), n) for n in names[:i + 1]])
        if cfg.sequential:
            scores = []
            for n in names[:i + 1]:
                probe = runner.build(n, shared)
                probe.head.load_state_dict(heads[n])
                scores.append(runner.score(probe, n))
            seq_accuracy.append(scores)
        rows.append(row)
        log(f"    test accuracy {row.library_accuracy:.4f}"
            + (f", from scratch {row.scratch_accuracy:.4f}" if row.scratch_accuracy is not None else "")
            + (f", sequential {row.sequential_accuracy:.4f}" if row.sequential_accuracy is not None else "")
            + f"; earlier tasks now: {', '.join(f'{n} {a:.4f}' for n, a in zip(names, accuracy[-1], strict=False))}")
        elapsed = time.perf_counter() - started
        left = elapsed / (i + 1) * (len(names) - i - 1)
        log(f"    {elapsed:.0f} s so far" + (f", about {left:.0f} s left for {len(names) - i - 1} more task(s)"
                                            if i + 1 < len(names) else ""))
    result = ContinualResult(names, rows, accuracy, seq_accuracy if cfg.sequential else None, str(library_dir))
    text = format_result(result)
    log(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "continual.json", {"config": dataclasses.asdict(cfg), "result": result.to_dict()})
        (out / "continual.md").write_text(text + "\n")
    return result


def check_output_folder(out: Path) -> None:
    """Refuse, before any training, an output path that is a file or lies below one (the tables could not be
    written after the run)."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"--output {out}: {path} is a file; give a folder")
            return


def _matrix(title: str, names: list[str], values: list[list[float]]) -> list[str]:
    lines = [title, "", "| after \\ on | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, row in enumerate(values):
        cells = [f"{v:.4f}" for v in row] + [""] * (len(names) - len(row))
        lines.append(f"| {names[i]} | " + " | ".join(cells) + " |")
    return lines


def format_result(result: ContinualResult) -> str:
    """Markdown tables: each task's start and accuracy, and accuracy on earlier tasks after each new one."""
    seq = result.sequential_accuracy is not None
    scratch = any(r.scratch_accuracy is not None for r in result.rows)
    head = "| task | started from (cosine) | library start |" + (" scratch | gain |" if scratch else "") \
        + (" sequential |" if seq else "")
    lines = ["New task accuracy (test):", "", head, "|---" * (head.count("|") - 1) + "|"]
    for r in result.rows:
        start = ", ".join(f"{n} ({s:.3f})" for n, s in r.init_from) or "usual init"
        line = f"| {r.task} | {start} | {r.library_accuracy:.4f} |"
        if scratch:
            gain = "" if r.scratch_accuracy is None else f"{r.library_accuracy - r.scratch_accuracy:+.4f}"
            line += f" {'' if r.scratch_accuracy is None else f'{r.scratch_accuracy:.4f}'} | {gain} |"
        if seq:
            line += f" {'' if r.sequential_accuracy is None else f'{r.sequential_accuracy:.4f}'} |"
        lines.append(line)
    lines += [""] + _matrix("Accuracy on every task met so far, scored from the library's stored adapters "
                            "(forgetting = first score minus last):", result.tasks, result.accuracy)
    lines.append(f"forgetting: {forgetting_line(result.tasks, result.accuracy)}")
    if result.sequential_accuracy is not None:
        lines += [""] + _matrix("Sequential baseline (one prompt carried across tasks, each task's own head):",
                                result.tasks, result.sequential_accuracy)
        lines.append(f"forgetting: {forgetting_line(result.tasks, result.sequential_accuracy)}")
    return "\n".join(lines)


def forgetting_line(names: list[str], values: list[list[float]]) -> str:
    """Per task, its accuracy right after it was learned minus its accuracy at the end."""
    return ", ".join(f"{n} {values[j][j] - values[-1][j]:+.4f}" for j, n in enumerate(names[:len(values)]))
