"""Pooling the input's positions of the last hidden states into one vector per row.

Shared by the heads that read one vector per input (classification, label description); the
prompt's positions are removed before pooling, so a pooled vector means the same with and
without a prompt.
"""

from __future__ import annotations

import torch

from promptlearning.errors import ConfigError

POOLINGS = ("auto", "cls", "mean", "last")


def check_pooling(how: str) -> None:
    """Refuse a pooling name that :func:`pool` does not know."""
    if how not in POOLINGS:
        raise ConfigError(f"unknown pooling {how!r}; choose one of: {', '.join(POOLINGS)}")


def pool(hidden: torch.Tensor, text_mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool the input positions of (B, L, H) hidden states into (B, H)."""
    mask = text_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    if how == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        # index of each row's last attended position (works for left and right padding)
        positions = torch.arange(text_mask.shape[1], device=hidden.device)
        last = (text_mask.long() * positions).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ConfigError(f"unknown pooling {how!r}; choose one of: {', '.join(POOLINGS)}")
