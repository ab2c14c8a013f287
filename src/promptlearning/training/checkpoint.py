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


ADAM_STATE = frozenset({"step", "exp_avg", "exp_avg_sq"})


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                      steps_taken: int = 0) -> None:
    """Load the saved optimizer state; a state cut short raises KeyError (the caller names the damage).

    Every parameter of one optimizer holds the same state entries, and Adam's exist after its first step:
    a checkpoint missing them would resume with fresh moments and silently compute another run.
    """
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    with_tensors = set(state)
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    if set(state) - with_tensors:  # a step count without its moments: the optimizer would fail at its next step
        raise KeyError(f"optimizer moments of parameter {min(set(state) - with_tensors)}")
    if len({frozenset(entries) for entries in state.values()}) > 1:
        raise KeyError("optimizer state entries differ between parameters")
    adam = any("betas" in group for group in meta["param_groups"])  # Adam, AdamW: what their step reads
    if adam and ((not state and steps_taken > 0) or any(not entries.keys() >= ADAM_STATE for entries in state.values())):
        raise KeyError("Adam's moments")
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


#: how on after a checkpoint that cannot be resumed: the folder holds a run, so a plain rerun is refused too
AFRESH = "start afresh there with --overwrite in place of --resume, or choose a new --output"


def damaged(directory: Path, why: str) -> TrainingError:
    """The one-line refusal of a checkpoint that is there but cannot be resumed from."""
    return TrainingError(f"checkpoint {directory} is damaged ({why}); {AFRESH}")


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint's tensors and metadata, checked for what a resume reads (a hand-edited or cut file
    fails here in one line, not as a KeyError deep in the restore)."""
    recover_directory(directory)  # a save killed between its two renames left the previous checkpoint aside
    if not (directory / META_FILE).is_file():
        raise TrainingError(f"--resume given but {directory} holds no checkpoint; {AFRESH}")
    meta = read_json(directory / META_FILE, lambda why: TrainingError(f"checkpoint unreadable: {why}; {AFRESH}"))
    try:
        tensors = load_file(str(directory / STATE_FILE))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise TrainingError(f"checkpoint {directory / STATE_FILE} is corrupt ({type(exc).__name__}); {AFRESH}") \
            from exc
    state = meta.get("state") if isinstance(meta, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) \
            or not isinstance(meta.get("optimizer"), dict):
        raise damaged(directory / META_FILE, "no training state or optimizer state in it")
    if "rng.torch" not in tensors and not any(k.startswith("rng.rank") for k in tensors):
        raise damaged(directory / STATE_FILE, "no random-number state in it")
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
