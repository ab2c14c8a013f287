"""The head interface: what turns the prompted backbone's last hidden states into a task's outputs.

A head is an ``nn.Module`` registered under a ``kind`` with its own config class (a
:class:`~promptlearning.heads.config.HeadConfig` subclass in the same module). Besides scoring,
it *declares* what callers need to know, so that no caller ever branches on a kind:

- ``output`` (:class:`OutputKind`): the shape and meaning of its scores, and so which loss,
  metrics and decoding apply;
- ``needs_training``: whether it has parameters that must be trained before its scores mean
  anything (prompt search refuses such heads);
- ``serves_many_tasks``: whether one head scores several tasks' label sets (multi-task runs,
  adapting to an unseen task, distillation);
- ``needs_lm_head`` and :meth:`Head.check_backbone`: which backbones it can serve.

Where the coming heads go (issues 19 and 23); each is one new module in this package:

- **token labelling** (``token_classification.py``): ``output = OutputKind.TOKEN_LABELS``; its
  :meth:`Head.forward` drops the prompt positions and returns (B, L, C) over the input positions,
  scoring a word by its first sub-token; :meth:`Head.loss` is cross-entropy over (B, L, C) against
  (B, L) labels holding -100 wherever nothing is scored (a word's later sub-tokens, template
  words, padding). A probe built without a task calls ``forward`` alone, so the head reads
  everything it needs from the hidden states and the context.
- **language modelling** (``language_modeling.py``): ``output = OutputKind.TEXT``,
  ``needs_lm_head = True``, ``needs_training = False`` (like the verbaliser it borrows the
  frozen LM head, captured at construction and not saved); it returns (B, L, V) next-token
  logits and its ``loss`` is the shifted cross-entropy on the target tokens only (labels -100 on
  the prompt and the input); ``check_backbone`` refuses encoders. Generation stays
  :meth:`PromptModel.generate`.
- **image heads** (issue 23): an image backbone hands the same (B, P + S, H) hidden states, its S
  positions being patches (and the CLS token) with ``ctx.text_mask`` marking them, so the
  classification head's pooling applies as is; a head that reads the frozen model's own classifier
  (a label mapping over ImageNet classes, the image counterpart of the verbaliser) captures that
  classifier at construction as the verbaliser captures the LM head, and refuses backbones without
  one in ``check_backbone``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch
from promptlearning.errors import ConfigError
from promptlearning.heads.config import (  # noqa: F401  (re-exported: the heads' public names live here)
    HEADS,
    HeadConfig,
    LabelWordsConfig,
    ensure_heads_registered,
    get_head,
    head_kinds,
    legacy_key,
    register_head,
)
from promptlearning.heads.pooling import POOLINGS, check_pooling, pool  # noqa: F401  (re-exported)

Runner = Callable[[Batch], tuple[torch.Tensor, PromptContext]]


class OutputKind(enum.StrEnum):
    """What a head's scores are. Losses, metrics, decoding and the contract test read this, never a kind."""

    LABEL = "label"
    """One label per input: (B, C) scores over the row's task's labels; gold labels (B,)."""
    TOKEN_LABELS = "token_labels"
    """One label per input position: (B, L, C); gold labels (B, L), -100 where nothing is scored."""
    TEXT = "text"
    """Next-token logits of a causal LM: (B, L, V); gold target token ids (B, L), -100 on prompt and input."""

    def shape(self, rows: int, positions: int, classes: int, vocab: int) -> tuple[int, ...]:
        """The shape of a head's scores for ``rows`` inputs of ``positions`` input positions each."""
        if self is OutputKind.LABEL:
            return (rows, classes)
        if self is OutputKind.TOKEN_LABELS:
            return (rows, positions, classes)
        return (rows, positions, vocab)


class Head(nn.Module):
    """Base of every head. A subclass sets the class attributes below and overrides :meth:`forward`."""

    kind: ClassVar[str] = ""
    config_class: ClassVar[type[HeadConfig]] = HeadConfig
    summary: ClassVar[str] = ""
    output: ClassVar[OutputKind] = OutputKind.LABEL
    needs_training: ClassVar[bool] = True  # has parameters that mean nothing until trained
    serves_many_tasks: ClassVar[bool] = False  # one head scores several tasks' label sets
    needs_lm_head: ClassVar[bool] = False  # reads the backbone's (frozen) language-modelling head
    input_kinds: ClassVar[frozenset[str]] = frozenset({"text"})  # the backbones it serves: "text", "image"

    def __init__(self, config: HeadConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} is built from a {self.config_class.__name__}, "
                            f"not a {type(config).__name__}")
        self.check_backbone(backbone)
        self.config = config
        self.num_labels = len(labels)

    @classmethod
    def check_backbone(cls, backbone: Backbone) -> None:
        """Refuse, with a one-line fix, a backbone this head cannot serve (by default: one lacking
        the LM head the head needs). Heads with other needs (a causal LM, an image classifier)
        extend it."""
        kind = str(getattr(backbone.info, "modality", "text"))
        if kind not in cls.input_kinds:
            raise ConfigError(f"the {cls.kind} head serves {'/'.join(sorted(cls.input_kinds))} backbones and "
                              f"{backbone.info.name} reads {kind}s; use --head classification")
        if cls.needs_lm_head and backbone.lm_head is None:
            raise ConfigError(f"the {cls.kind} head needs a backbone with an LM head (e.g. smollm2-135m); "
                              f"{backbone.info.name} has none: use --head classification")

    def add_task(self, task: Any, backbone: Backbone, index: int) -> None:
        """Make room for another task's labels. Heads with per-task weights serve only the one they were built for."""
        if index == 0 and len(task.labels) == self.num_labels:
            return
        raise ConfigError(f"the {self.kind} head has per-task weights and serves one task; use "
                          "--head label_description (or the verbalizer on a causal LM) for several or new tasks")

    def default_template(self, task: str | None, labels: Sequence[str] | None = None) -> str | None:
        """The template this head wants for a task (its name and labels) when the user and the method give none."""
        return None

    def fit_to_data(self, batches: Iterable[Batch], run: Runner) -> None:
        """Fix what the head reads off the training data before training starts (the frequency label
        mapping counts the frozen model's predictions); ``run`` forwards the prompted backbone. Most
        heads read nothing here."""

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        """Scores from the last hidden states (B, P + L, H): the first ``ctx.num_prompt_positions``
        are the prompt's, ``ctx.text_mask`` (B, L) marks the real input positions. The shape is
        the one :attr:`output` declares."""
        raise NotImplementedError

    def score(self, batch: Batch, run: Runner) -> torch.Tensor:
        """Scores for a batch; ``run`` forwards the prompted backbone. Heads that need other inputs
        than the batch itself (e.g. multi-token label words) override this."""
        hidden, ctx = run(batch)
        return self(hidden, ctx)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss of this head's scores against a batch's labels (here: one label per
        input, cross-entropy of (B, C) against (B,)); heads with another :attr:`output` override it."""
        return F.cross_entropy(scores, labels)


def build_head(config: HeadConfig, backbone: Backbone, labels: Sequence[str] | int) -> Head:
    """The head ``config`` chooses, for ``labels`` (names, or a count: label0, label1, ...)."""
    names = [f"label{i}" for i in range(labels)] if isinstance(labels, int) else list(labels)
    return config.head_class()(config, backbone, names)
