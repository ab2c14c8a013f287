"""Resumable training checkpoints: tensors in safetensors, everything else in JSON.

Optimizer moments, the model's trainable state and the RNG states are flattened into one
safetensors file; step counters, the best dev score and the history go to JSON. Never pickled,
written atomically so a kill during a save leaves the previous checkpoint intact.

A data-parallel run's checkpoint holds every rank's RNG state (``rng.rank{r}.torch``, and
``rng.rank{r}.cuda`` for its GPU) and the number of processes (``world_size`` in the JSON); a
one-process checkpoint keeps the one-process layout (``rng.torch``, ``rng.cuda.{i}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from promptlearning.adapters import save_tensors
from promptlearning.errors import TrainingError
from promptlearning.fileio import atomic_directory, read_json, recover_directory, write_json

STATE_FILE = "training_state.safetensors"
META_FILE = "trainer_state.json"


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, slot in sd["state"].items():
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG state: torch's CPU generator and, with a GPU, its current device's."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def save_checkpoint(directory: Path, model_state: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    meta: dict[str, Any], extra: dict[str, torch.Tensor] | None = None,
                    rank_rngs: Sequence[dict[str, torch.Tensor]] | None = None) -> None:
    """Write the checkpoint; ``rank_rngs`` (one :func:`rng_state` per rank) in a data-parallel run."""
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    tensors.update(extra or {})
    optim, optim_meta = optimizer_tensors(optimizer)
    tensors.update(optim)
    if rank_rngs is not None and len(rank_rngs) > 1:
        for rank, rngs in enumerate(rank_rngs):
            tensors.update({f"rng.rank{rank}.{name}": state.cpu() for name, state in rngs.items()})
        meta = {**meta, "world_size": len(rank_rngs)}
    else:
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
    with atomic_directory(directory, marker_files=(META_FILE,)) as tmp:
        save_tensors(tensors, tmp / STATE_FILE)
        write_json(tmp / META_FILE, {**meta, "optimizer": optim_meta})


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    recover_directory(directory)  # a save killed between its two renames left the previous checkpoint aside
    if not (directory / META_FILE).is_file():
        raise TrainingError(f"--resume given but {directory} holds no checkpoint; drop --resume to start afresh")
    meta = read_json(directory / META_FILE,
                     lambda why: TrainingError(f"checkpoint unreadable: {why}; drop --resume to start afresh"))
    try:
        tensors = load_file(str(directory / STATE_FILE))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise TrainingError(f"checkpoint {directory / STATE_FILE} is corrupt ({type(exc).__name__}); "
                            "drop --resume to start afresh") from exc
    return tensors, meta


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`rng_state` returned (maybe another process's)."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def restore_rng(tensors: dict[str, torch.Tensor], rank: int = 0, world_size: int = 1) -> None:
    """Restore this process's RNG state (``rank`` of ``world_size``, which wrote the checkpoint)."""
    if world_size > 1:
        prefix = f"rng.rank{rank}."
        set_rng_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        return
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
