"""CoOp (Zhou et al., IJCV 2022): learned context words for CLIP's class-name prompts.

Zero-shot CLIP scores an image against "a photo of a {class}." for every class. CoOp keeps the
class names and replaces the hand-written words before them by M learned vectors in the text
tower's token-embedding space, shared by all classes; both towers stay frozen. The CLIP head builds
"[SOS] X .. X {class}. [EOS]" and the text tower's token table is hooked to put these vectors at
the X positions. Initialised from the embeddings of ``init_words`` (CoOp's "a photo of a"), so the
untrained method scores as the zero-shot template "a photo of a {class}." does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.errors import ConfigError
from promptlearning.methods.base import MethodConfig, PromptContext, PromptMethod, option, register_method


@dataclass
class CoopConfig(MethodConfig):
    init_words: str | None = option("a photo of a", "words whose token embeddings start the context (their count "
                                                    "is M); none: M = num_context random vectors")
    num_context: int = option(4, "context length M when init_words is none")
    init_seed: int = option(0, "seed of a random initialisation")

    def check(self) -> None:
        if self.init_words is not None and not self.init_words.strip():
            raise ConfigError("init_words is empty; give words such as 'a photo of a' or none for random context")
        if self.num_context < 1:
            raise ConfigError(f"num_context must be >= 1 (got {self.num_context})")

    def check_backbone(self, info: BackboneInfo) -> None:
        if not getattr(info, "has_text_tower", False):
            raise ConfigError(f"{info.name} has no text tower; coop and cocoop need a CLIP backbone (a local CLIP "
                              "checkpoint folder, or tiny-clip)")


def initial_context(config: CoopConfig, backbone: Backbone) -> torch.Tensor:
    """The starting context (M, H_text): the token embeddings of ``init_words``, or seeded N(0, 0.02^2) vectors."""
    table: nn.Embedding = backbone.model.text_model.embeddings.token_embedding  # type: ignore[union-attr, assignment]
    if config.init_words is not None:
        ids = backbone.tokenizer(config.init_words, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ConfigError(f"init_words {config.init_words!r} has no tokens for this tokenizer; choose other words")
        return table.weight.detach()[torch.tensor(ids)].clone().float()  # (M, H_text)
    generator = torch.Generator().manual_seed(config.init_seed)
    return torch.randn(config.num_context, table.weight.shape[1], generator=generator) * 0.02


@register_method
class ContextOptimization(PromptMethod):
    name = "coop"
    config_class = CoopConfig
    summary = "CoOp: learned context words before the class names in CLIP's text prompts (CLIP backbones)"
    default_lr = 2e-3
    input_kinds = frozenset({"image"})
    needs_text_tower = True

    def __init__(self, config: CoopConfig, backbone: Backbone) -> None:
        super().__init__(config, backbone)
        self.config: CoopConfig = config
        self.context = nn.Parameter(initial_context(config, backbone))  # (M, H_text)

    def class_context(self, ctx: PromptContext) -> torch.Tensor | None:
        return self.context.unsqueeze(0)  # (1, M, H_text): one context for every image
