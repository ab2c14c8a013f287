"""What the launcher told this process: its rank, the number of processes, the sharding asked for.

``torchrun`` and ``accelerate launch`` (``--multi_gpu``, also on a machine without GPUs) start
N copies of the command and say in the environment which one each is (``RANK``,
``WORLD_SIZE``; ``mpirun`` says it with its own names). Read from the environment alone, so
the command line can refuse a launch it cannot honour, and quiet the other ranks, before it
imports torch. Inside training, :mod:`promptlearning.training.distributed` asks Accelerate,
which reads the same variables.
"""

from __future__ import annotations

import os

from promptlearning.errors import ConfigError

#: environment names of (rank, world size), torchrun's first, then MPI implementations' (as Accelerate reads them)
_RANK_NAMES = (("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
               ("PMI_RANK", "PMI_SIZE"), ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))

#: Accelerate's switches for engines that shard the model itself; the trainer replicates it instead
_SHARDING_ENGINES = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
                     "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM"}


def _int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else None


def launched_rank() -> tuple[int, int]:
    """(rank, world size) of this process as its launcher set them; (0, 1) for a plain run."""
    for rank_name, size_name in _RANK_NAMES:
        rank, size = _int(rank_name), _int(size_name)
        if rank is not None and size is not None and size >= 1:
            return rank, size
    return 0, 1


def is_main_process() -> bool:
    """Whether this process is the one that writes files and prints (rank 0, or the only process)."""
    return launched_rank()[0] == 0


def _true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def check_launch(command: str) -> None:
    """Refuse, in one line naming the fix, a launch that would silently do the wrong thing.

    - a sharding engine (FSDP, DeepSpeed): the trainer replicates the frozen backbone on every rank
      and all-reduces the prompts' gradients; it never shards a model;
    - ``accelerate launch --cpu --num_processes N``: Accelerate starts ONE process for ``--cpu``
      unless given an MPI hostfile, so N copies were asked for and one runs (it leaves MASTER_PORT set
      and no rank);
    - several processes for a command other than ``train``: each would run the whole command.
    """
    for name, engine in _SHARDING_ENGINES.items():
        if _true(name):
            raise ConfigError(f"{engine} is not supported: promptlearning trains data-parallel only (the frozen "
                              "backbone is copied to every process); launch without --use_fsdp/--use_deepspeed")
    rank, world = launched_rank()
    if _true("ACCELERATE_USE_CPU") and world == 1 and os.environ.get("MASTER_PORT"):
        raise ConfigError("accelerate launch --cpu started one process (Accelerate needs --mpirun_hostfile for "
                          "several CPU processes); use `accelerate launch --multi_gpu --num_processes N` (it runs "
                          "on CPUs when there is no GPU) or `torchrun --nproc_per_node N`")
    if world > 1 and command != "train":
        raise ConfigError(f"`promptlearning {command}` runs in one process, but {world} were launched (each would "
                          f"run it whole); run it without torchrun/accelerate launch (only `train` is data-parallel)")
