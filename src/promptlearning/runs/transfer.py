"""Prompt transfer: start a target task from a prompt trained on source tasks.

Sources are prompt-tuning adapters, one per source task. They are ranked for the target by
similarity of task representations (``support``: the mean encoding of K examples per task;
``description``: the encoding of the task's description and label names) or, as in SPoT
(Vu et al., 2022), by similarity of prompts (``prompt``: the target's prompt after a few
training steps from the usual start, compared by its mean vector with each source prompt's).

Two ways to use the sources:

* ``init``: the target's prompt starts as a copy of the best-ranked source's prompt;
* ``attention``: the ``prompt_attention`` method mixes all frozen source prompts and a new
  target prompt per input.

Either is compared with the same training from the usual initialisation (``scratch``).
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

from promptlearning.backbones import Backbone
from promptlearning.configs import check_at_least, check_max_length, option
from promptlearning.data import TaskData, few_shot_split, get_task, list_tasks, load_task
from promptlearning.data.examples import Example
from promptlearning.data.task_info import TaskInfo, cosine_ranking, task_representation
from promptlearning.errors import ConfigError
from promptlearning.fileio import write_json
from promptlearning.methods.prompt_attention import PromptAttention, load_source_prompt
from promptlearning.methods.protocols import soft_prompt_of
from promptlearning.model import PromptModel
from promptlearning.runs.continual import check_output_folder
from promptlearning.training import TrainConfig, Trainer
from promptlearning.training.metrics import evaluate

RANK_BY = ("support", "description", "prompt")
VARIANTS = ("init", "attention")


@dataclass
class TransferConfig:
    by: str = option("support", "how sources are ranked: support, description (task representations) or prompt (SPoT)")
    variant: str = option("init", "init (start from the best source's prompt) or attention (mix all sources per input)")
    shots: int = option(16, "K training (and dev) examples per class of the target (and of each source, for support)")
    data_seed: int = option(13, "seed of the few-shot splits")
    seed: int = option(42, "training seed")
    steps: int = option(60, "target training steps")
    probe_steps: int = option(20, "steps of the target probe prompt (by=prompt)")
    lr: float | None = option(None, "learning rate of the prompt (default: the method's own)")
    batch_size: int = option(8, "training batch size")
    eval_every: int = option(20, "dev evaluation interval (the best-on-dev prompt is kept)")
    max_length: int = option(64, "max input tokens")
    max_test: int | None = option(None, "score on a fixed random subset of N test examples")
    scratch: bool = option(True, "also train the target from the usual initialisation for comparison")
    output_dir: str | None = option(None, "where the adapter, transfer.json and transfer.md go")
    device: str = option("auto", "auto, cpu or cuda")

    def __post_init__(self) -> None:
        if self.by not in RANK_BY:
            raise ConfigError(f"unknown ranking {self.by!r}; choose one of: {', '.join(RANK_BY)}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown transfer variant {self.variant!r}; choose one of: {', '.join(VARIANTS)}")
        if min(self.shots, self.steps, self.probe_steps) < 1:
            raise ConfigError("shots, steps and probe_steps must be >= 1")
        check_at_least(1, batch_size=self.batch_size, eval_every=self.eval_every, max_test=self.max_test)
        check_max_length(self.max_length)
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number (got {self.lr!r})")


@dataclass
class Source:
    path: Path
    task: str
    prompt: torch.Tensor  # (P, H)
    similarity: float = 0.0


@dataclass
class _Target:
    data: TaskData
    train: list[Example]
    dev: list[Example]
    test: list[Example]


def load_sources(paths: Sequence[str | Path], backbone: Backbone) -> list[Source]:
    """Read every source prompt, refusing adapters for another backbone or without an input prompt."""
    if not paths:
        raise ConfigError("no source adapters; give one or more prompt_tuning adapters with --source DIR")
    return [Source(Path(p), *load_source_prompt(p, backbone)) for p in paths]


def _registered(task: str, what: str) -> TaskData:
    if task not in {spec.name for spec in list_tasks()}:
        raise ConfigError(f"{what} task {task!r} is not a registered task, so it has no examples or description "
                          "to compare; use --by prompt, or registered tasks (see `promptlearning tasks`)")
    return load_task(task)


def _info(data: TaskData) -> TaskInfo:
    return TaskInfo(data.name, list(data.labels), data.description)


class _Trainer:
    def __init__(self, cfg: TransferConfig, backbone: Backbone, target: _Target) -> None:
        self.cfg, self.backbone, self.target = cfg, backbone, target

    def build(self, method: str, options: dict[str, Any]) -> PromptModel:
        return PromptModel.build(self.backbone, method, self.target.data.labels, method_options=options,
                                 task=self.target.data.name, max_length=self.cfg.max_length)

    def fit(self, model: PromptModel, steps: int | None = None) -> PromptModel:
        config = TrainConfig(max_steps=steps or self.cfg.steps, lr=self.cfg.lr, batch_size=self.cfg.batch_size,
                             eval_every=min(self.cfg.eval_every, steps or self.cfg.steps), checkpoint_every=0,
                             seed=self.cfg.seed, device=self.cfg.device, quiet=True)
        Trainer(model, config, model.encode(self.target.train), model.encode(self.target.dev)).fit()
        return model

    def score(self, model: PromptModel) -> float:
        return float(evaluate(model, model.encode(self.target.test))["accuracy"])


def rank_sources(sources: list[Source], target: _Target, cfg: TransferConfig, backbone: Backbone,
                 trainer: _Trainer | None = None) -> list[Source]:
    """Sources sorted by similarity to the target, best first (``similarity`` filled in)."""
    if cfg.by == "prompt":
        trainer = trainer or _Trainer(cfg, backbone, target)
        length = sources[0].prompt.shape[0]
        probe = trainer.fit(trainer.build("prompt_tuning", {"num_tokens": length}), cfg.probe_steps)
        prompt = soft_prompt_of(probe.method, "ranking sources by prompt similarity").soft_prompt()
        query = prompt.float().cpu().mean(0)  # (H,)
        keys = torch.stack([s.prompt.mean(0) for s in sources])  # (S, H)
    else:
        query = task_representation(cfg.by, backbone, _info(target.data), target.train).cpu()
        reps = []
        for s in sources:
            data = _registered(s.task, "source")
            reps.append(task_representation(cfg.by, backbone, _info(data),
                                            few_shot_split(data, cfg.shots, cfg.data_seed).train).cpu())
        keys = torch.stack(reps)
    ranked = []
    for i, sim in cosine_ranking(query, keys):
        ranked.append(dataclasses.replace(sources[i], similarity=sim))
    return ranked


def run_transfer(target: str, sources: Sequence[str | Path], config: TransferConfig | None = None, *,
                 backbone: Backbone | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rank the sources for ``target``, train the target from them and (optionally) from scratch."""
    from promptlearning.runs.single_task import shared_backbone, test_subset

    cfg = config or TransferConfig()
    get_task(target)
    if not sources:
        raise ConfigError("no source adapters; give one or more prompt_tuning adapters with --source DIR")
    if cfg.output_dir:
        check_output_folder(Path(cfg.output_dir))
    if backbone is None:
        from promptlearning.adapters import read_adapter_config

        backbone = shared_backbone(str(read_adapter_config(Path(sources[0])).get("backbone", {}).get("name")))
    loaded = load_sources(sources, backbone)
    data = load_task(target)
    split = few_shot_split(data, cfg.shots, cfg.data_seed)
    test = split.test if cfg.max_test is None else test_subset(split.test, cfg.max_test)
    tgt = _Target(data, split.train, split.dev, test)
    trainer = _Trainer(cfg, backbone, tgt)
    ranked = rank_sources(loaded, tgt, cfg, backbone, trainer)
    log(f"sources for {target} by {cfg.by} similarity: " + ", ".join(f"{s.task} {s.similarity:.3f}" for s in ranked))
    best = ranked[0]
    length = best.prompt.shape[0]
    result: dict[str, Any] = {"target": target, "by": cfg.by, "variant": cfg.variant,
                              "ranking": [{"task": s.task, "adapter": str(s.path), "similarity": s.similarity}
                                          for s in ranked]}
    if cfg.variant == "init":
        model = trainer.build("prompt_tuning", {"num_tokens": length})
        soft_prompt_of(model.method, "starting from a source prompt").set_soft_prompt(best.prompt)
        result["started_from"] = best.task
    else:
        # the sources are read and checked already: hand their prompts in rather than have the method reread them
        model = trainer.build("prompt_attention", {"num_sources": len(ranked), "num_tokens": length})
        attention_method(model).set_source_prompts([(s.task, s.prompt) for s in ranked])
    runs = 2 if cfg.scratch else 1
    log(f"training {target} from the source prompt(s) ({cfg.variant}; run 1 of {runs})")
    started = time.perf_counter()
    result["transfer_accuracy"] = trainer.score(trainer.fit(model))
    took = time.perf_counter() - started
    if cfg.variant == "attention":
        result["mean_attention"] = mean_attention(model, tgt.test)
        log("mean attention over the target's test inputs: "
            + ", ".join(f"{k} {v:.3f}" for k, v in result["mean_attention"].items()))
    if cfg.scratch:
        log(f"training {target} from scratch for comparison (run 2 of 2; the first took {took:.0f} s, "
            f"so about {took:.0f} s left)")
        result["scratch_accuracy"] = trainer.score(trainer.fit(trainer.build("prompt_tuning", {"num_tokens": length})))
    log(format_transfer(result))
    if cfg.output_dir:
        out = Path(cfg.output_dir)
        model.save_pretrained(out / "best", extra={"task": target, "transfer": result["ranking"]})
        write_json(out / "transfer.json", {"config": dataclasses.asdict(cfg), "result": result})
        (out / "transfer.md").write_text(format_transfer(result) + "\n")
        result["adapter"] = str(out / "best")
    return result


@torch.no_grad()
def mean_attention(model: PromptModel, examples: Sequence[Example], batch_size: int = 64) -> dict[str, float]:
    """A prompt_attention model's mean weight on each candidate over ``examples`` (sources by task, then target)."""
    from promptlearning.data.batching import batches
    from promptlearning.injection import make_context

    method = attention_method(model)
    model.eval()
    total = torch.zeros(method.config.num_sources + 1)
    for batch in batches(model.encode(list(examples)), batch_size, model.pad_id, model.left_pad):
        ctx = make_context(model.backbone, method, batch.to(model.device))
        total += method.mixing_weights(ctx).sum(0).float().cpu()
    names = list(method.config.source_names) + ["target"]
    return {name: float(v) / max(1, len(examples)) for name, v in zip(names, total, strict=True)}


def attention_method(model: PromptModel) -> PromptAttention:
    """The model's prompt_attention method (the attention variant's own members: sources, mixing weights)."""
    if not isinstance(model.method, PromptAttention):
        raise ConfigError(f"attention weights exist only for prompt_attention (not {type(model.method).name})")
    return model.method


def format_transfer(result: dict[str, Any]) -> str:
    lines = [f"Transfer to {result['target']} (sources ranked by {result['by']}; variant {result['variant']}):", "",
             "| source | similarity |", "|---|---|"]
    lines += [f"| {r['task']} | {r['similarity']:.4f} |" for r in result["ranking"]]
    lines += ["", "| start | test accuracy |", "|---|---|"]
    label = f"from {result['started_from']}" if result["variant"] == "init" else "attention over all sources"
    lines.append(f"| {label} | {result['transfer_accuracy']:.4f} |")
    if "scratch_accuracy" in result:
        lines.append(f"| scratch | {result['scratch_accuracy']:.4f} |")
        lines.append(f"| gain | {result['transfer_accuracy'] - result['scratch_accuracy']:+.4f} |")
    return "\n".join(lines)
