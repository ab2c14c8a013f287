"""Device placement through Hugging Face Accelerate: the same code on CPU and CUDA."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from promptlearning.errors import ConfigError


@lru_cache(maxsize=4)
def accelerator_for(device: str = "auto") -> Any:
    """One Accelerator per requested device kind (Accelerate keeps process-wide state)."""
    from accelerate import Accelerator

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return Accelerator(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


def resolve_device(device: str = "auto") -> torch.device:
    return accelerator_for(device).device
