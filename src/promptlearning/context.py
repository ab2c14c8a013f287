"""What a prompted forward pass knows about its batch: the contract between injector, methods and heads.

It sits in the core, below both methods and heads, because both read it and neither may
import the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PromptContext:
    """What a method may read about the current batch.

    ``task_ids`` lets mixed-task batches, multi-task prompts and hypernetworks work with no
    special path; ``text_embeds`` and ``text_mask`` are the input tokens' embeddings, for
    methods that condition on the input.
    """

    batch_size: int
    device: torch.device
    dtype: torch.dtype
    task_ids: torch.Tensor | None = None  # (B,)
    task_repr: torch.Tensor | None = None  # (B, D)
    text_embeds: torch.Tensor | None = None  # (B, L, H)
    text_mask: torch.Tensor | None = None  # (B, L)
    prompt_slots: torch.Tensor | None = None  # (B, L) template pseudo-token index, -1 elsewhere
    num_prompt_positions: int = 0
    # images (set by promptlearning.image_injection): CLIP's projected image features, and the learned
    # context words for the class-name prompts of its text tower that the method gives (CoOp, CoCoOp)
    image_features: torch.Tensor | None = None  # (B, D)
    class_context: torch.Tensor | None = None  # (B or 1, M, H_text)
