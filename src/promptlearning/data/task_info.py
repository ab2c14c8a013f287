"""Task representations: one vector per task, made by the frozen backbone with no prompt.

A hypernetwork, a prompt library and source-task selection all need to compare tasks. The
representations here need no training, so an unseen task gets one at K=0 from its
description alone ("description"), or from a handful of its examples ("support").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

from promptlearning.backbones import Backbone
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError, DataError

REPR_KINDS = ("description", "support")


@dataclass
class TaskInfo:
    """What a model must know of a task to serve it: its name, label names and description."""

    name: str
    labels: list[str]
    description: str = ""
    label_texts: dict[str, list[str]] = field(default_factory=dict)  # optional phrases per label

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "labels": list(self.labels), "description": self.description,
                "label_texts": {k: list(v) for k, v in self.label_texts.items()}}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> TaskInfo:
        return cls(str(values["name"]), [str(x) for x in values["labels"]],  # type: ignore[attr-defined]
                   str(values.get("description") or ""),
                   {str(k): [str(x) for x in v] for k, v in dict(values.get("label_texts") or {}).items()})  # type: ignore[call-overload]


#: the memo :func:`reusing_encodings` installs (None: every call encodes afresh)
_MEMO: ContextVar[dict[tuple[object, ...], torch.Tensor] | None] = ContextVar("encodings_memo", default=None)


@contextmanager
def reusing_encodings(memo: dict[tuple[object, ...], torch.Tensor]) -> Iterator[None]:
    """Inside the block, :func:`encode_texts` answers texts it already encoded on the same backbone
    from ``memo`` (kept by the caller across blocks) instead of running the backbone again.

    For callers that build many models on one backbone whose weights do not change while
    ``memo`` lives: prompt search builds a model per candidate, and without this each build
    would encode the label-description head's label names anew.
    """
    token = _MEMO.set(memo)
    try:
        yield
    finally:
        _MEMO.reset(token)


@torch.no_grad()
def encode_texts(backbone: Backbone, texts: Sequence[str], max_length: int = 64, batch_size: int = 32) -> torch.Tensor:
    """Mean-pooled last hidden states of the bare frozen backbone, (N, H), float32 on the backbone's device.

    Mean pooling is how the packaged MiniLM sentence encoder was trained to embed text, so the
    vectors are meaningful for it without any training; decoders get the same treatment.
    """
    if not texts:
        raise DataError("no texts to encode; give at least one example or a description")
    memo, key = _MEMO.get(), (id(backbone), tuple(texts), max_length, batch_size)
    if memo is not None and key in memo:
        return memo[key].clone()
    tok = backbone.tokenizer
    device = backbone.input_embeddings().weight.device
    was_training = backbone.model.training
    backbone.model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        enc = tok(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = backbone.model(**enc).last_hidden_state.float()  # (B, L, H)
        mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, L, 1)
        out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))  # (B, H)
    backbone.model.train(was_training)
    encoded = torch.cat(out)
    if memo is not None:
        memo[key] = encoded.clone()
    return encoded


def description_text(task: TaskInfo) -> str:
    """The sentence that stands for a task: its description followed by its label names."""
    if not task.description.strip():
        raise ConfigError(f"task {task.name!r} has no description; give one with --description \"...\" "
                          "or use the 'support' task representation")
    return f"{task.description.strip()} Labels: {', '.join(task.labels)}."


def description_repr(backbone: Backbone, task: TaskInfo) -> torch.Tensor:
    """(H,) encoding of the task's description and label names."""
    return encode_texts(backbone, [description_text(task)])[0]


def support_repr(backbone: Backbone, examples: Sequence[Example]) -> torch.Tensor:
    """(H,) mean encoding of a task's support examples."""
    if not examples:
        raise DataError("the 'support' task representation needs at least one example; give --shots >= 1 "
                        "or use the 'description' representation")
    texts = [e.text_a if e.text_b is None else f"{e.text_a} {e.text_b}" for e in examples]
    return encode_texts(backbone, texts).mean(0)


def task_representation(kind: str, backbone: Backbone, task: TaskInfo,
                        support: Sequence[Example] | None = None) -> torch.Tensor:
    """Dispatch on the representation kind; (H,) float32."""
    if kind == "description":
        return description_repr(backbone, task)
    if kind == "support":
        return support_repr(backbone, support or [])
    raise ConfigError(f"unknown task representation {kind!r}; choose one of: {', '.join(REPR_KINDS)}")


def cosine_ranking(query: torch.Tensor, keys: torch.Tensor) -> list[tuple[int, float]]:
    """Indices of ``keys`` (N, D) sorted by cosine similarity to ``query`` (D,), best first."""
    sims = torch.nn.functional.cosine_similarity(keys.float(), query.float().unsqueeze(0), dim=-1)  # (N,)
    order = torch.argsort(sims, descending=True).tolist()
    return [(int(i), float(sims[i])) for i in order]
