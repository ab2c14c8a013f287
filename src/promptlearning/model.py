"""PromptModel: a frozen backbone, a trainable prompt method and a head.

The wrapper never branches on a method's name: every method answers the same questions and
the injector places the answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from promptlearning.adapters import (
    WEIGHTS_FILE,
    check_backbone,
    load_adapter_state,
    load_state_into,
    read_adapter_config,
)
from promptlearning.backbones import Backbone, load_backbone
from promptlearning.data.batching import Batch, batches, encode
from promptlearning.data.examples import Example
from promptlearning.data.images import encode_images
from promptlearning.data.task_info import TaskInfo
from promptlearning.data.templates import Template
from promptlearning.data.truncation import TruncationCount, check_truncation
from promptlearning.errors import AdapterError, ConfigError, PromptLearningError, UnknownNameError
from promptlearning.heads.base import Head, HeadConfig, OutputKind, build_head
from promptlearning.image_backbones import ImageBackbone
from promptlearning.image_injection import run_image_backbone
from promptlearning.injection import run_backbone
from promptlearning.methods.base import PromptMethod, build_method, get_method


def check_template(template: Template | None, method: PromptMethod) -> None:
    """A template's [P] slots and the method's pseudo tokens must match one for one."""
    have = template.num_pseudo if template else 0
    want = method.num_template_tokens
    if have != want:
        raise ConfigError(
            f"the template has {have} [P] prompt slot(s) but method {type(method).name} fills {want}; "
            + (f"use a template with {want} slots, e.g. '[P{want}] {{text_a}}'" if want
               else "remove the [P] slots or use --method p_tuning")
        )


DEFAULT_MAX_LENGTH = 128


def default_max_length(backbone: Backbone, prompt_positions: int = 0) -> int:
    """min(128, the backbone's positions less the prompt's): a small model never overflows its positions."""
    return max(1, min(DEFAULT_MAX_LENGTH, backbone.info.max_positions - prompt_positions))


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, C) for heads with one label per input (see heads.base.OutputKind)
    loss: torch.Tensor | None = None


class PromptModel(nn.Module):
    def __init__(self, backbone: Backbone, method: PromptMethod, head: Head, labels: Sequence[str],
                 *, task: str | None = None, max_length: int = 128, template: str | None = None,
                 tasks: Sequence[TaskInfo] | None = None, task_templates: dict[str, str] | None = None) -> None:
        """``task_templates`` restores the per-task templates of a saved model (task name -> template)."""
        super().__init__()
        tasks = list(tasks) if tasks else [TaskInfo(task or "task", list(labels))]
        if len({t.name for t in tasks}) != len(tasks):
            raise ConfigError(f"task names repeat in {[t.name for t in tasks]}; give each task once")
        labels = tasks[0].labels
        if len(labels) < 2 and head.output is not OutputKind.TEXT:  # a generator's outputs are texts, not labels
            raise ConfigError(f"a classifier needs at least 2 labels (got {list(labels)})")
        chosen = template or method.default_template
        self.template = chosen or head.default_template(task if task is not None else tasks[0].name, labels)
        self._template = Template.parse(self.template) if self.template else None
        check_template(self._template, method)
        # A template the user or the method chose serves every task. The head's default is a question
        # about one task (the verbaliser's "Movie review: ... positive or negative?"), so asking it of
        # another task's rows would mislead the LM: then every task keeps its own default, a task added
        # later included, and the map is saved so a reloaded adapter encodes each task as it was trained.
        self.task_templates: dict[str, str] | None = (
            dict(task_templates) if task_templates is not None else None if chosen or not self.template else {})
        self._templates: dict[int, Template | None] = {}  # task index -> its parsed template (per-task mode)
        self.backbone = backbone
        self.method = method
        self.head = head
        self.labels = list(labels)
        self.task = task if task is not None else (tasks[0].name if len(tasks) > 1 else None)
        self.max_length = max_length
        self.truncation = "head"  # which part of an over-long input is kept (data.truncation); saved when not head
        self.tasks: list[TaskInfo] = []
        self.task_reprs: torch.Tensor
        self.register_buffer("task_reprs", torch.zeros(0, backbone.info.hidden_size))  # (T, H)
        if method.trains_backbone:
            backbone.unfreeze()
        else:
            backbone.freeze()
        for info in tasks:
            self.add_task(info, representation=torch.zeros(backbone.info.hidden_size))

    @classmethod
    def build(cls, backbone: Backbone, method: str, labels: Sequence[str], *,
              method_options: dict[str, Any] | None = None, head: HeadConfig | None = None,
              task: str | None = None, max_length: int | None = None, template: str | None = None,
              tasks: Sequence[TaskInfo] | None = None,
              support: dict[str, Sequence[Example]] | None = None, truncation: str = "head") -> PromptModel:
        """Build from names: the usual entry point for library users.

        ``tasks`` (with their descriptions) makes a model that serves several tasks; ``support``
        gives examples per task name for methods that represent a task by its examples.
        ``max_length`` (input tokens) defaults to :func:`default_max_length`: what fits the backbone."""
        built = build_method(method, backbone, method_options)
        if max_length is None:
            max_length = default_max_length(backbone, built.num_prompt_positions)
        model = cls(backbone, built, build_head(head or HeadConfig(), backbone, labels), labels,
                    task=task, max_length=max_length, template=template, tasks=tasks)
        for info in model.tasks:
            model.set_task_representation(info.name, (support or {}).get(info.name))
        model.truncation = check_truncation(truncation)
        return model

    # ------------------------------------------------------------------ tasks
    def task_index(self, name: str | None) -> int:
        """Row task id of a task this model serves (None: the first)."""
        if name is None:
            return 0
        for i, info in enumerate(self.tasks):
            if info.name == name:
                return i
        raise UnknownNameError(f"this model does not serve task {name!r}; it serves "
                               f"{', '.join(t.name for t in self.tasks)} (add one with `promptlearning adapt`)")

    def add_task(self, info: TaskInfo, support: Sequence[Example] | None = None,
                 representation: torch.Tensor | None = None) -> int:
        """Serve one more task: the head learns its labels, the method grows its per-task part,
        and its representation is computed (from its description or support examples)."""
        if any(t.name == info.name for t in self.tasks):
            raise ConfigError(f"task {info.name!r} is already served by this model; choose another name")
        if len(info.labels) < 2 and self.head.output is not OutputKind.TEXT:
            raise ConfigError(f"task {info.name!r} needs at least 2 labels (got {info.labels})")
        index = len(self.tasks)
        text, parsed = None, None
        if self.task_templates is not None:
            text = self.task_templates.get(info.name) or (
                self.template if index == 0 else self.head.default_template(info.name, info.labels)) or self.template
            parsed = Template.parse(text) if text else None
            check_template(parsed, self.method)
        self.head.add_task(info, self.backbone, index)
        self.method.add_task(info.name)
        self.tasks.append(info)
        if self.task_templates is not None and text is not None:
            self.task_templates[info.name] = text
            self._templates[index] = parsed
        row = torch.zeros(1, self.task_reprs.shape[1], device=self.task_reprs.device)
        self.task_reprs = torch.cat([self.task_reprs, row])
        if representation is not None:
            self.task_reprs[index] = representation.to(self.task_reprs)
        else:
            self.set_task_representation(info.name, support)
        return index

    def set_task_representation(self, name: str, support: Sequence[Example] | None = None) -> None:
        """(Re)compute a task's representation if the method reads one; others keep zeros."""
        kind = self.method.task_repr_kind
        if kind is None:
            return
        from promptlearning.data.task_info import task_representation

        index = self.task_index(name)
        self.task_reprs[index] = task_representation(kind, self.backbone, self.tasks[index], support).to(
            self.task_reprs)

    @property
    def num_classes(self) -> int:
        return max(len(t.labels) for t in self.tasks)

    # ------------------------------------------------------------------ running
    @property
    def device(self) -> torch.device:
        return self.backbone.input_embeddings().weight.device

    def train(self, mode: bool = True) -> PromptModel:
        """Train the method and head; the frozen backbone stays in eval mode (no dropout)."""
        super().train(mode)
        if not self.method.trains_backbone:
            self.backbone.eval()
        return self

    def forward(self, batch: Batch) -> ModelOutput:
        if self.method.task_repr_kind is not None and batch.task_repr is None:
            batch = dataclasses.replace(batch, task_repr=self.task_reprs[batch.task_ids.to(self.task_reprs.device)])
        with self._precision():
            logits = self.head.score(batch, self._run)  # (B, C): the shape the head's `output` declares
        labels = batch.labels  # a loss only for labels of the head's output kind: (B,) per row, (B, L) per position
        scored = labels is not None and labels.dim() == logits.dim() - 1
        loss = self.head.loss(logits, labels) if scored and labels is not None else None
        return ModelOutput(logits, loss)

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast when the frozen backbone is held in bfloat16/float16: the method's and head's own
        weights stay float32 (an optimizer step on bfloat16 weights loses small updates), and autocast
        runs each matrix product in the backbone's dtype whichever side its inputs come from."""
        dtype = self.backbone.input_embeddings().weight.dtype
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _run(self, batch: Batch) -> tuple[torch.Tensor, Any]:
        if isinstance(self.backbone, ImageBackbone):  # pixels in, the same hidden states and context out
            hidden, _, ctx = run_image_backbone(self.backbone, self.method, batch)  # (B, P + S, H)
            return hidden, ctx
        hidden, _, ctx = run_backbone(self.backbone, self.method, batch)  # (B, P + L, H)
        return hidden, ctx

    def trainable_parameters(self) -> list[nn.Parameter]:
        """One predicate decides what trains and what is saved: requires_grad."""
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        names = {id(p) for p in self.trainable_parameters()}
        state: dict[str, torch.Tensor] = {n: p for n, p in self.named_parameters() if id(p) in names}
        state.update({n: b for n, b in self.method.named_buffers(prefix="method")})
        state.update({n: b for n, b in self.head.named_buffers(prefix="head")})
        if self.method.task_repr_kind is not None:
            state["task_reprs"] = self.task_reprs
        return {n: t.detach() for n, t in state.items()}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def num_backbone_parameters(self) -> int:
        return sum(p.numel() for p in self.backbone.parameters())

    def template_of(self, task_id: int = 0) -> str | None:
        """The template that task ``task_id``'s rows are encoded with."""
        if self.task_templates is not None and task_id < len(self.tasks):
            return self.task_templates.get(self.tasks[task_id].name, self.template)
        return self.template

    def encode(self, examples: Sequence[Example], task_id: int = 0, count: TruncationCount | None = None) -> list[Any]:
        """Tokenised rows of ``examples`` for task ``task_id``; ``count`` (if given) records what truncation cut."""
        if isinstance(self.backbone, ImageBackbone):  # each example's text is an image path or data: URI
            return encode_images(examples, self.backbone.preprocess, task_id)
        template = self._templates.get(task_id, self._template)
        return encode(self.backbone.tokenizer, examples, self.max_length, task_id, template, self.truncation, count)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 32,
                      task: str | None = None, count: TruncationCount | None = None) -> torch.Tensor:
        """Class probabilities (N, C) for raw texts or (text_a, text_b) pairs, for one served task
        (``count``, if given, records what truncation cut)."""
        task_id = self.task_index(task)
        num = len(self.tasks[task_id].labels)
        examples = [Example(t[0], 0, t[1]) if isinstance(t, tuple) else Example(t, 0) for t in texts]
        was_training = self.training
        self.eval()
        out = []
        for batch in batches(self.encode(examples, task_id, count), batch_size, self.pad_id, self.left_pad):
            batch.labels = None  # no loss needed; template slots and task data stay (predict must equal evaluate)
            out.append(self(batch.to(self.device)).logits[:, :num].float().softmax(-1).cpu())
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, num)

    def predict(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 32,
                task: str | None = None) -> list[str]:
        probs = self.predict_proba(texts, batch_size, task)
        labels = self.tasks[self.task_index(task)].labels
        return [labels[i] for i in probs.argmax(-1).tolist()]

    def generate(self, texts: Sequence[str], **kwargs: Any) -> list[str]:
        """Continue each text with the prompted causal LM (greedy by default; do_sample=True samples)."""
        from promptlearning.generation import generate_text

        return generate_text(self, texts, **kwargs)

    @property
    def pad_id(self) -> int:
        return int(getattr(self.backbone.tokenizer, "pad_token_id", 0) or 0)  # image backbones: no tokenizer

    @property
    def left_pad(self) -> bool:
        return self.backbone.info.is_decoder

    # ------------------------------------------------------------------ adapters
    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        from promptlearning.adapters import save_adapter

        return save_adapter(self, Path(directory), extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path, backbone: Backbone | None = None,
                        device: str | torch.device | None = None) -> PromptModel:
        model = load_adapter(Path(directory), backbone)
        return model.to(device) if device is not None else model


def saved_task_templates(config: dict[str, Any], head: Head, tasks: list[TaskInfo] | None) -> dict[str, str] | None:
    """The per-task templates of a saved model (None: one template for every task).

    Adapters saved before per-task templates have no entry: their template was the head's default
    for their first task exactly when it equals that default now, and then later tasks get theirs."""
    if "task_templates" in config:
        saved = config["task_templates"]
        return None if saved is None else {str(k): str(v) for k, v in dict(saved).items()}
    template = config.get("template")
    first = tasks[0].name if tasks else (config.get("task") or "task")
    if template and template == head.default_template(config.get("task") or first, config["labels"]):
        return {first: template}
    return None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def backbone_named_by(config: dict[str, Any], directory: Path) -> str:
    """The backbone an adapter's config names, if it is a packaged name or a hub id.

    A name read from a file is never opened as a path: an adapter made on a local model folder
    (or a crafted config naming ``../../etc``) needs that folder given explicitly."""
    from promptlearning.backbones import packaged_base

    name = str(config.get("backbone", {}).get("name", "minilm-l6"))
    if packaged_base(name) or (_HUB_ID.match(name) and ".." not in name and not Path(name).exists()):
        return name
    raise AdapterError(f"adapter {directory} was made on the backbone at {name!r}, which is not a packaged name or "
                       f"hub id; pass it yourself: --backbone PATH (from Python: from_pretrained(dir, backbone=...))")


def load_adapter(directory: Path, backbone: Backbone | None = None) -> PromptModel:
    """Build the PromptModel an adapter directory describes, on ``backbone`` (default: the one it names)."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    if "ensemble" in config:
        raise AdapterError(f"adapter {directory} is an ensemble of {len(config['ensemble'].get('members', []))} "
                           "prompts; load it with promptlearning.ensemble.load_predictor (the CLI does)")
    if backbone is None:
        backbone = load_backbone(backbone_named_by(config, directory))
    check_backbone(config, backbone, directory)
    model = model_from_config(config, backbone, directory)
    state = load_adapter_state(directory)  # ours, or a PEFT folder that `promptlearning export` wrote
    load_state_into(model, state, set(model.trainable_state()), directory / WEIGHTS_FILE)
    return model.to(backbone.input_embeddings().weight.device)


def model_from_config(config: dict[str, Any], backbone: Backbone, directory: Path) -> PromptModel:
    """The untrained PromptModel an adapter config describes (its weights are loaded by the caller);
    ``directory`` names the adapter in messages. An ensemble builds each member from its own config."""
    try:
        cls = get_method(config["method"])
        method = cls(cls.config_class.from_dict(config["method_config"]), backbone)
        head = build_head(HeadConfig.from_saved(config["head"]), backbone, config["labels"])
        tasks = [TaskInfo.from_dict(t) for t in config["tasks"]] if config.get("tasks") else None
        model = PromptModel(backbone, method, head, config["labels"], task=config.get("task"),
                            max_length=int(config.get("max_length", 128)), template=config.get("template"),
                            tasks=tasks, task_templates=saved_task_templates(config, head, tasks))
        model.truncation = check_truncation(str(config.get("truncation", "head")))
    except PromptLearningError as exc:
        raise AdapterError(f"adapter {directory} has an unusable config: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise AdapterError(f"adapter {directory} config lacks or mistypes {exc}; retrain it") from exc
    return model
