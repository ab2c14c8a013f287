"""Data-parallel plumbing for the trainer: which rows of each global batch this process trains on,
and the few collectives that make N processes train one model.

The frozen backbone is copied to every process; each trains on its share of every global
batch (``--batch-size`` is the global batch, split into contiguous near-equal slices, rank 0
first) and, after its backward, ONE all-reduce sums every process's gradients of the trainable
parameters, each weighted by its share of the batch, so every process then holds the gradient
of the whole batch and takes the same optimizer step. The processes and Accelerate's
process group come from the launcher (``torchrun``, ``accelerate launch``): gloo on CPUs,
NCCL on GPUs.

Why an explicit all-reduce and not ``accelerator.prepare(model)`` (DDP): the trainable
parameters are prompts and a head, a few thousand to a few million numbers, so one flat
all-reduce per step costs nothing that DDP's bucketing would save; strategies take
gradients that DDP's backward hooks never see (SPT's gate step uses ``torch.autograd.grad``
and ``functional_call``) or that would fire its hooks twice per step; and the weights make
the result exact when the processes' shares differ (a last batch of 33 rows over 2
processes), where DDP averages 17 and 16 rows as if equal. Rank 0 evaluates dev and
broadcasts the scores, so every early-stopping decision is made once and shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from promptlearning.errors import TrainingError

T = TypeVar("T")


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the processes training one model (rank 0 of 1 in a plain run)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def of(cls, accelerator: Any) -> DataParallel:
        """The place Accelerate found (it read the launcher's environment and joined the process group)."""
        return cls(rank=int(accelerator.process_index), world_size=int(accelerator.num_processes))

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes adapters, checkpoints and metrics, prints, and runs callbacks."""
        return self.rank == 0

    def share(self, rows: Sequence[int]) -> list[int]:
        """This rank's contiguous slice of a global batch's rows: sizes differ by at most one, rank 0's
        first. A rank left without rows (a batch smaller than the world) is given the batch's first row
        to compute with, at weight 0 (see :meth:`weight`), so every rank still takes part in every step."""
        if not self.active:
            return list(rows)
        base, extra = divmod(len(rows), self.world_size)
        start = self.rank * base + min(self.rank, extra)
        mine = list(rows[start:start + base + (1 if self.rank < extra else 0)])
        return mine if mine else list(rows[:1])

    def weight(self, rows: Sequence[int], local: float, total: float) -> float:
        """This rank's share of the global loss: ``local`` / ``total`` (rows or scored tokens), 0 for a
        rank that only fills in (see :meth:`share`)."""
        if not self.active:
            return 1.0
        base, extra = divmod(len(rows), self.world_size)
        if base == 0 and self.rank >= extra:
            return 0.0
        return local / total if total else 0.0

    def reduce_gradients(self, params: Sequence[torch.nn.Parameter], loss: torch.Tensor,
                         weight: float) -> torch.Tensor:
        """Replace every parameter's gradient by the weighted sum over the ranks (one all-reduce, which
        also carries the loss); return the global loss. A gradient that no rank produced stays None, as
        in one process (AdamW skips such parameters); one that only some ranks produced (a task's prompt
        whose rows fell to another rank) counts as zero where missing."""
        if not self.active:
            return loss
        device = loss.device
        grads = [p.grad.detach().reshape(-1).float() if p.grad is not None
                 else torch.zeros(p.numel(), device=device) for p in params]
        # a rank at weight 0 only fills in: its gradients must not make a parameter look trained
        present = torch.tensor([float(p.grad is not None and weight > 0) for p in params], device=device)
        flat = torch.cat([*[g.to(device) * weight for g in grads], present,
                          (loss.detach().float() * weight).reshape(1).to(device)])
        torch.distributed.all_reduce(flat)
        offset = 0
        for i, p in enumerate(params):
            chunk = flat[offset:offset + p.numel()]
            offset += p.numel()
            p.grad = chunk.view_as(p).to(p.dtype) if flat[-1 - len(params) + i] > 0 else None
        return flat[-1]

    def reduce_sum(self, tensors: Sequence[torch.Tensor], weight: float) -> list[torch.Tensor]:
        """The weighted sum over the ranks of each tensor (a strategy's own gradients, e.g. SPT's gates)."""
        if not self.active:
            return list(tensors)
        flat = torch.cat([t.detach().reshape(-1).float() * weight for t in tensors])
        torch.distributed.all_reduce(flat)
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset:offset + t.numel()].view_as(t).to(t.dtype))
            offset += t.numel()
        return out

    def broadcast(self, value: T) -> T:
        """Rank 0's value, on every rank."""
        if not self.active:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value])[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's value, in rank order, on every rank."""
        if not self.active:
            return [value]
        from accelerate.utils import gather_object

        return list(gather_object([value]))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def check_resume(self, saved_world_size: int, where: str) -> None:
        """A checkpoint resumes exactly only with as many processes as wrote it (each restores its own
        RNG state and takes the same slice of every batch)."""
        if saved_world_size != self.world_size:
            def runs(n: int) -> str:
                return "1 process" if n == 1 else f"{n} processes"

            raise TrainingError(f"the checkpoint in {where} was written by {runs(saved_world_size)} and this run has "
                                f"{runs(self.world_size)}; resume with {saved_world_size} (e.g. torchrun "
                                f"--nproc_per_node {saved_world_size}) or choose a new --output")


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of rank ``rank`` > 0 (rank 0 keeps ``seed``, so its stream is a one-process run's):
    each rank then draws its own dropout masks instead of the same masks for its rows."""
    return (seed * 1_000_003 + rank * 7_919) % (2**63)
