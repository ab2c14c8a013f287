"""Prompt ensembles: N prompts trained for one task, answered as one model in one forward.

Prompt tuning's paper proposed it: several prompts of one frozen model, their predictions
combined, at the cost of one model in memory. Here each input row is repeated once per member
and every copy gathers its own member's prompt through the mixed-batch machinery
(:class:`~promptlearning.mixture.AdapterMixture`), so the members run in ONE backbone forward of
B x N rows; the members' class probabilities are then averaged (the mean of their softmaxes, not
of their logits: a confident member cannot outvote the others by its scale alone).

On disk an ensemble is one adapter directory: the members' shared config (task, labels, head,
template, backbone) with an ``ensemble`` section (how they combine and each member's method
config, which may differ, e.g. the layers SPT chose), and one safetensors file holding each
member's trainable state under ``members.<i>.``. :func:`load_predictor` reads a plain adapter or
an ensemble, so every command that serves predictions takes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from promptlearning.adapters import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    adapter_config,
    check_backbone,
    load_state_into,
    load_tensors,
    read_adapter_config,
    save_tensors,
)
from promptlearning.backbones import Backbone, load_backbone
from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.data.examples import Example
from promptlearning.data.task_info import TaskInfo
from promptlearning.data.truncation import TruncationCount
from promptlearning.errors import AdapterError, ConfigError
from promptlearning.fileio import atomic_directory, write_json
from promptlearning.heads.base import Head, OutputKind
from promptlearning.methods import list_methods
from promptlearning.methods.base import input_kind
from promptlearning.mixture import AdapterMixture, check_mixable
from promptlearning.model import ModelOutput, PromptModel, backbone_named_by, model_from_config

COMBINE = "mean_probability"  # how members' answers combine: the mean of their softmax probabilities
MEMBER_PREFIX = "members"


def ensemble_methods() -> list[str]:
    """The methods whose prompts can be ensembled: trained, sharing the frozen backbone, and on text backbones
    (the mixed-batch forward the members share runs text backbones only)."""
    return [m.name for m in list_methods() if m.needs_training and not m.trains_backbone and "text" in m.input_kinds]


def check_member(model: PromptModel) -> None:
    """Refuse, with the methods or heads that work, a model whose prompts cannot share one ensemble forward."""
    if input_kind(model.backbone.info) != "text":
        raise ConfigError(f"--ensemble shares one mixed-batch forward that runs text backbones only, and "
                          f"{model.backbone.info.name} reads images; train single prompts on it (drop --ensemble)")
    method = type(model.method)
    if method.trains_backbone or not method.needs_training:
        why = "changes the backbone itself" if method.trains_backbone else "trains nothing, so its members are equal"
        raise ConfigError(f"--ensemble cannot combine {method.name} ({why}); use one of: "
                          f"{', '.join(ensemble_methods())}")
    if model.head.output is not OutputKind.LABEL:
        raise ConfigError(f"--ensemble combines one label per input; the {model.head.kind} head gives "
                          f"{model.head.output.value}: use --head classification, verbalizer or label_description")
    try:
        check_mixable(model)
    except ConfigError as exc:
        raise ConfigError(f"--ensemble cannot combine these members: {exc}") from exc


class EnsembleModel(nn.Module):
    """N trained prompts of one task on one frozen backbone, answering as one classifier.

    It answers what evaluation, ``predict`` and serving ask of a :class:`PromptModel`
    (``labels``, ``encode``, ``predict_proba``, a forward whose logits' argmax is the prediction),
    so they take it unchanged. Its logits are the log of the members' mean probabilities."""

    def __init__(self, members: Sequence[PromptModel]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 members (got {len(members)}); train one with "
                              "--ensemble 2 or more")
        for m in members:
            check_member(m)
        first = members[0]
        differ = [a for a in ("labels", "template", "max_length", "truncation", "task")
                  if any(getattr(m, a) != getattr(first, a) for m in members)]
        if differ:
            raise ConfigError(f"ensemble members differ in {', '.join(differ)}; ensemble only prompts trained for "
                              "the same task with the same options")
        self.members = nn.ModuleList(members)
        self._members: list[PromptModel] = list(members)
        self.mixture = AdapterMixture(members)  # one forward for every member's rows

    def current_mixture(self) -> AdapterMixture:
        """The mixture, rebuilt if the model moved since it was built: its prompt banks are snapshots on one device."""
        if self.mixture.method.bank_device != self.device:
            self.mixture = AdapterMixture(self._members)
        return self.mixture

    # ------------------------------------------------------------------ what callers read of a model
    @property
    def first(self) -> PromptModel:
        return self._members[0]

    @property
    def backbone(self) -> Backbone:
        return self.first.backbone

    @property
    def head(self) -> Head:
        """Member 0's head: every member's is of the same kind and labels."""
        return self.first.head

    @property
    def labels(self) -> list[str]:
        return self.first.labels

    @property
    def task(self) -> str | None:
        return self.first.task

    @property
    def tasks(self) -> list[TaskInfo]:
        return self.first.tasks

    @property
    def template(self) -> str | None:
        return self.first.template

    @property
    def max_length(self) -> int:
        return self.first.max_length

    @property
    def truncation(self) -> str:
        return self.first.truncation

    @property
    def num_classes(self) -> int:
        return self.first.num_classes

    @property
    def pad_id(self) -> int:
        return self.first.pad_id

    @property
    def left_pad(self) -> bool:
        return self.first.left_pad

    @property
    def device(self) -> torch.device:
        return self.first.device

    def first_members(self, n: int) -> EnsembleModel:
        """The ensemble of the first ``n`` members: a smaller ensemble compared on the same prompts."""
        return EnsembleModel(self._members[:n])

    def num_trainable(self) -> int:
        """Parameters of all members together (what the ensemble adds to the frozen backbone)."""
        return sum(m.num_trainable() for m in self._members)

    def train(self, mode: bool = True) -> EnsembleModel:
        """The ensemble only answers; the frozen backbone stays in eval mode whatever ``mode`` says."""
        super().train(mode)
        self.backbone.eval()
        return self

    def encode(self, examples: Sequence[Example], task_id: int = 0, count: TruncationCount | None = None) -> list[Encoded]:
        """Tokenised rows (the members share the template, so once for all of them)."""
        return list(self.first.encode(examples, task_id, count))

    # ------------------------------------------------------------------ answering
    def probabilities(self, batch: Batch) -> torch.Tensor:
        """The members' mean class probabilities (B, C), from one backbone forward of B x N rows."""
        n, rows = len(self._members), len(batch)
        repeated: dict[str, Any] = {}
        for f in fields(batch):  # every per-row field, each row N times in a row: (B, ...) -> (B * N, ...)
            value = getattr(batch, f.name)
            repeated[f.name] = value.repeat_interleave(n, dim=0) if isinstance(value, torch.Tensor) else value
        repeated["task_ids"] = torch.arange(n, device=batch.input_ids.device).repeat(rows)  # copy m of row r: member m
        repeated.update(labels=None, task_repr=None)  # no loss; each member's own task data (the mixture fills it)
        expanded = Batch(**repeated)
        with self.first._precision():  # the members' own rule: autocast on a bfloat16/float16 backbone
            logits = self.current_mixture()(expanded)[:, : len(self.labels)]  # (B * N, C)
        return logits.float().softmax(-1).view(rows, n, -1).mean(dim=1)  # (B, C)

    def forward(self, batch: Batch) -> ModelOutput:
        log_probs = self.probabilities(batch).clamp_min(torch.finfo(torch.float32).tiny).log()  # (B, C)
        labels = batch.labels
        loss = F.nll_loss(log_probs, labels.to(log_probs.device)) if labels is not None and labels.dim() == 1 else None
        return ModelOutput(log_probs, loss)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 32,
                      task: str | None = None, count: TruncationCount | None = None) -> torch.Tensor:
        """Mean class probabilities (N, C) for raw texts or pairs; ``batch_size`` counts inputs, each forward
        runs ``batch_size`` x members rows."""
        self.first.task_index(task)  # an ensemble serves its one task; another name is refused as a model would
        examples = [Example(t[0], 0, t[1]) if isinstance(t, tuple) else Example(t, 0) for t in texts]
        was_training = self.training
        self.eval()
        out = [self.probabilities(b.to(self.device)).cpu()
               for b in batches(self.encode(examples, 0, count), batch_size, self.pad_id, self.left_pad)]
        self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, len(self.labels))

    def predict(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 32,
                task: str | None = None) -> list[str]:
        probs = self.predict_proba(texts, batch_size, task)
        return [self.labels[i] for i in probs.argmax(-1).tolist()]

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """One adapter directory: one config naming the members and how they combine, one safetensors file."""
        config = adapter_config(self.first)
        config["ensemble"] = {"combine": COMBINE,
                              "members": [{"method_config": m.method.config.to_dict()} for m in self._members]}
        if extra:
            config["extra"] = extra
        state = {f"{MEMBER_PREFIX}.{i}.{k}": v for i, m in enumerate(self._members)
                 for k, v in m.trainable_state().items()}
        target = Path(directory)
        with atomic_directory(target, marker_files=(CONFIG_FILE,)) as tmp:
            save_tensors(state, tmp / WEIGHTS_FILE)
            write_json(tmp / CONFIG_FILE, config)
        return target

    @classmethod
    def from_pretrained(cls, directory: str | Path, backbone: Backbone | None = None,
                        device: str | torch.device | None = None) -> EnsembleModel:
        directory = Path(directory)
        config = read_adapter_config(directory)
        model = load_ensemble(directory, config, backbone)
        return model.to(device) if device is not None else model


def member_configs(config: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
    """Each member's adapter config: the shared one with that member's method config."""
    section = config.get("ensemble")
    members = section.get("members") if isinstance(section, dict) else None
    if (not isinstance(section, dict) or section.get("combine") != COMBINE or not isinstance(members, list)
            or len(members) < 2 or not all(isinstance(m, dict) and "method_config" in m for m in members)):
        raise AdapterError(f"adapter {directory} has an unusable ensemble section (it needs combine {COMBINE!r} and "
                           "2 or more members with a method_config); retrain it with --ensemble N")
    shared = {k: v for k, v in config.items() if k != "ensemble"}
    return [{**shared, "method_config": m["method_config"]} for m in members]


def load_ensemble(directory: Path, config: dict[str, Any], backbone: Backbone | None = None) -> EnsembleModel:
    """The EnsembleModel an ensemble adapter directory describes, on ``backbone`` (default: the one it names)."""
    configs = member_configs(config, directory)
    if backbone is None:
        backbone = load_backbone(backbone_named_by(config, directory))
    check_backbone(config, backbone, directory)
    state = load_tensors(directory / WEIGHTS_FILE)
    members = []
    for i, member_config in enumerate(configs):
        member = model_from_config(member_config, backbone, directory)
        prefix = f"{MEMBER_PREFIX}.{i}."
        mine = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        load_state_into(member, mine, set(member.trainable_state()), directory / WEIGHTS_FILE)
        members.append(member.to(backbone.input_embeddings().weight.device))
    strays = sorted(k for k in state if not k.startswith(tuple(f"{MEMBER_PREFIX}.{i}." for i in range(len(configs)))))
    if strays:
        raise AdapterError(f"{directory / WEIGHTS_FILE} holds tensors of no member ({strays[:3]}); it is corrupt or "
                           "from another version: retrain it")
    try:
        return EnsembleModel(members).eval()
    except ConfigError as exc:
        raise AdapterError(f"adapter {directory} is an unusable ensemble: {exc}") from exc


def load_predictor(directory: str | Path, backbone: Backbone | None = None,
                   device: str | torch.device | None = None) -> PromptModel | EnsembleModel:
    """The model an adapter directory holds: one prompt (a PromptModel) or an ensemble of prompts.

    Every command that answers with a saved adapter (evaluate, predict, serve) loads it here."""
    directory = Path(directory)
    if "ensemble" in read_adapter_config(directory):
        return EnsembleModel.from_pretrained(directory, backbone, device)
    return PromptModel.from_pretrained(directory, backbone=backbone, device=device)
