"""The CLIP head: images scored against their class names through CLIP's text tower.

Zero-shot CLIP: each label becomes the prompt ``template.format(name)`` ("a photo of a cat."), the
text tower encodes it, and an image's score for a label is CLIP's scaled cosine between its image
features and that prompt's features. A method with learned context (CoOp, CoCoOp) replaces the
words before the name: the prompt becomes "X .. X {name}." and the method's M vectors take the X
positions (one context for all images, or one per image: then the text tower runs per image and
class). No parameters of its own: the baseline needs no training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, HeadConfig, OutputKind, register_head

PLACEHOLDER = "x"  # one token in CLIP's BPE and in the tiny WordPiece vocabulary


@dataclass
class ClipHeadConfig(HeadConfig):
    kind: str = option("clip", "CLIP: cosine of image features and class-name prompt features (zero-shot, CoOp, CoCoOp)")
    template: str = option("a photo of a {}.", "the hand-written class prompt; {} is the label name (learned context "
                                               "of coop/cocoop replaces the words before it)")

    def check(self) -> None:
        super().check()
        if self.template.count("{}") != 1:
            raise ConfigError(f"template {self.template!r} must hold the class name's place {{}} exactly once, "
                              "e.g. 'a photo of a {}.'")


@register_head
class ClipHead(Head):
    kind = "clip"
    config_class = ClipHeadConfig
    summary = "CLIP: scaled cosine of image features and class-name prompts (no parameters; CLIP backbones)"
    output = OutputKind.LABEL
    needs_training = False
    serves_many_tasks = False
    input_kinds = frozenset({"image"})

    config: ClipHeadConfig

    @classmethod
    def check_backbone(cls, backbone: Backbone) -> None:
        super().check_backbone(backbone)
        if not getattr(backbone.info, "has_text_tower", False):
            raise ConfigError(f"the clip head needs a CLIP backbone (a local CLIP checkpoint folder, or tiny-clip); "
                              f"{backbone.info.name} has no text tower: use --head classification")

    def __init__(self, config: ClipHeadConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        object.__setattr__(self, "_backbone", backbone)  # frozen, owned by the model: not saved here
        self.names = [str(label).replace("_", " ") for label in labels]
        self._tokens: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # context length M -> (ids, mask)

    def prompts(self, context: int) -> list[str]:
        """The class prompts: the template, or with ``context`` > 0 that many placeholders then the name."""
        if not context:
            return [self.config.template.format(name) for name in self.names]
        suffix = self.config.template.split("{}", 1)[1]
        return [" ".join([PLACEHOLDER] * context) + f" {name}{suffix}" for name in self.names]

    def tokens(self, context: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), each (C, L), of the class prompts, tokenised once per context length."""
        if context not in self._tokens:
            backbone: Any = self._backbone
            tokenizer = backbone.tokenizer
            if context and len(tokenizer(" ".join([PLACEHOLDER] * context), add_special_tokens=False)["input_ids"]) != context:
                raise ConfigError("this tokenizer splits the context placeholders; the clip head cannot place "
                                  "learned context with it")
            out = tokenizer(self.prompts(context), padding=True, return_tensors="pt")
            self._tokens[context] = (out["input_ids"], out["attention_mask"])
        ids, mask = self._tokens[context]
        return ids.to(device), mask.to(device)

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        backbone: Any = self._backbone
        if ctx.image_features is None:
            raise ConfigError("the clip head reads CLIP image features; use a CLIP backbone")
        image = ctx.image_features / ctx.image_features.norm(dim=-1, keepdim=True)  # (B, D)
        context = ctx.class_context  # (1 or B, M, H_text) or None
        ids, mask = self.tokens(0 if context is None else int(context.shape[1]), image.device)  # (C, L)
        classes = ids.shape[0]
        if context is None or context.shape[0] == 1:
            text = backbone.text_features(ids, mask, context)  # (C, D)
            text = text / text.norm(dim=-1, keepdim=True)
            return backbone.logit_scale * image @ text.t()  # (B, C)
        rows = context.shape[0]
        per_row = context.repeat_interleave(classes, dim=0)  # (B * C, M, H_text)
        text = backbone.text_features(ids.repeat(rows, 1), mask.repeat(rows, 1), per_row)  # (B * C, D)
        text = (text / text.norm(dim=-1, keepdim=True)).view(rows, classes, -1)  # (B, C, D)
        return backbone.logit_scale * torch.einsum("bd,bcd->bc", image, text)
