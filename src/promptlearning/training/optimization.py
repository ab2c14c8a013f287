"""The optimizer's parameter groups and the learning-rate schedule, each set by one rule.

Prompts never decay; matrices of the head (and of the backbone when a method fine-tunes it) do.
The schedule is a pure function of the step (linear warm-up, then linear decay to zero), so a
resumed run rebuilds it from the step alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from promptlearning.model import PromptModel
from promptlearning.training.config import TrainConfig


def parameter_groups(model: PromptModel, config: TrainConfig) -> list[dict[str, Any]]:
    """Optimizer groups by one rule: prompts never decay; matrices of the head/backbone do."""
    lr = config.lr if config.lr is not None else type(model.method).default_lr
    groups: list[dict[str, Any]] = []

    def add(name: str, params: list[nn.Parameter], group_lr: float) -> None:
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        if decay:
            groups.append({"name": f"{name}/decay", "params": decay, "lr": group_lr,
                           "weight_decay": config.weight_decay})
        if rest:
            groups.append({"name": f"{name}/no_decay", "params": rest, "lr": group_lr, "weight_decay": 0.0})

    method_params = [p for p in model.method.weight_parameters() if p.requires_grad]
    if method_params:
        groups.append({"name": "method", "params": method_params, "lr": lr, "weight_decay": 0.0})
    add("head", [p for p in model.head.parameters() if p.requires_grad], config.head_lr)
    if model.method.trains_backbone:
        add("backbone", [p for p in model.backbone.parameters() if p.requires_grad], lr)
    return groups


def describe_groups(groups: list[dict[str, Any]]) -> str:
    """One line per optimizer group with its peak learning rate (a schedule rewrites ``lr`` during warm-up;
    ``initial_lr`` is what was set)."""
    return "; ".join(f"{g['name']}: {sum(p.numel() for p in g['params']):,} params "
                     f"lr={g.get('initial_lr', g['lr']):g} wd={g['weight_decay']:g}" for g in groups)


def linear_schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(total * warmup_ratio)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor
