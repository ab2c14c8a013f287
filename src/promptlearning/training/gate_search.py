"""Bi-level (DARTS-style) search: weights on training data, architecture on validation data.

Each step first updates the architecture parameters (SPT's gate logits) on a validation
batch (or on the whole validation split, ``arch_batch`` 0), then the weights (generators and head) on a training batch, as in DARTS. The
architecture gradient is first-order by default (taken at the current weights); with
``second_order`` it is the exact gradient through one unrolled weight step,
``w' = w - xi * grad_w L_train(w, a)``, computed with ``torch.func``. With ``consistency`` > 0
(SPT-DARTS) a KL term pulls the gated supernet's predictions toward those of the discretised
model that keeps only the current top-K layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from promptlearning.configs import option
from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.methods.protocols import LayerGates, layer_gates_of
from promptlearning.model import PromptModel
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.checkpoint import optimizer_tensors, restore_optimizer
from promptlearning.training.config import TrainConfig
from promptlearning.training.trainer import Trainer


@dataclass
class SearchConfig:
    budget: int = option(3, "layer budget K: how many layers keep a prompt after the search")
    arch_lr: float = option(3e-2, "learning rate of the gate logits (Adam)")
    arch_weight_decay: float = option(1e-3, "weight decay of the gate logits")
    second_order: bool = option(False, "exact one-step unrolled architecture gradient instead of first-order")
    unroll_lr: float = option(1e-2, "step size xi of the unrolled weight step (second_order)")
    consistency: float = option(0.0, "weight of the KL term toward the discretised top-K model (SPT-DARTS; 0 = off)")
    val_fraction: float = option(0.5, "share of the few-shot training data held out to train the gates")
    search_steps: int | None = option(None, "steps of the search (default: max_steps)")
    threshold: float | None = option(None, "keep the layers whose gate probability reaches this instead of "
                                           "exactly K (at most K, at least the top one)")
    arch_batch: int | None = option(None, "validation rows per gate step (default: the training batch size); 0: the "
                                          "whole validation split every step, the gradient without batch noise")
    gates_from: str = option("best", "which search step's gates choose the layers: best (the best-on-dev step's, "
                                     "restored with the weights) or last (the final step's)")
    scorer: str = option("gates", "how layer sets are judged: gates (the bi-level gate search) or retrain (successive "
                                  "halving: random K-layer sets each trained alone, the better half trained again)")
    candidates: int = option(8, "scorer retrain: how many random K-layer sets the first rung trains (0: the "
                                "blocks alone, with blocks)")
    rung_steps: int = option(10, "scorer retrain: training steps per set in the first rung (doubled each rung)")
    blocks: bool = option(False, "scorer retrain: the first rung also trains every contiguous block of K candidate "
                                 "layers (first, middle, last and those between) beside the random sets")

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ConfigError(f"budget must be >= 1 (got {self.budget})")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1) (got {self.val_fraction})")
        if self.arch_lr <= 0 or self.consistency < 0:
            raise ConfigError("arch_lr must be > 0 and consistency >= 0")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ConfigError(f"threshold is a gate probability and must be in (0, 1) (got {self.threshold})")
        if self.arch_batch is not None and self.arch_batch < 0:
            raise ConfigError(f"arch_batch must be >= 0 (0: the whole validation split; got {self.arch_batch})")
        if self.gates_from not in ("best", "last"):
            raise ConfigError(f"gates_from must be best or last (got {self.gates_from!r})")
        if self.scorer not in ("gates", "retrain"):
            raise ConfigError(f"--layer-scorer (search option scorer) must be gates or retrain (got {self.scorer!r})")
        if self.candidates < (0 if self.blocks else 1) or self.rung_steps < 1:
            raise ConfigError(f"--layer-candidates must be >= 1 (>= 0 with --layer-blocks) and --rung-steps >= 1 "
                              f"(search options candidates, rung_steps; got {self.candidates}, {self.rung_steps})")
        if self.scorer == "retrain" and self.threshold is not None:
            raise ConfigError("--threshold reads gate probabilities; with --layer-scorer retrain give --layer-budget alone")


def split_for_search(items: list[Encoded], fraction: float, num_labels: int, seed: int
                     ) -> tuple[list[Encoded], list[Encoded]]:
    """Stratified split of the few-shot training data into weight-training and gate-training parts."""
    gen = torch.Generator().manual_seed(seed)
    train: list[Encoded] = []
    val: list[Encoded] = []
    for label in range(num_labels):
        members = [x for x in items if x.label == label]
        order = torch.randperm(len(members), generator=gen).tolist()
        n_val = int(round(len(members) * fraction))
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    present = {x.label for x in items}
    if {x.label for x in val} != present or {x.label for x in train} != present:
        raise ConfigError(f"the validation split is too small to search on ({len(val)} examples for "
                          f"{len(present)} classes); raise --shots or adjust --val-fraction")
    return train, val


class BilevelTrainer(Trainer):
    """Alternating architecture and weight updates over the same PromptModel."""

    def __init__(self, model: PromptModel, config: TrainConfig, search: SearchConfig, train: list[Encoded],
                 val: list[Encoded], dev: list[Encoded], output_dir: str | Path | None = None,
                 run_info: dict[str, Any] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> None:
        super().__init__(model, config, train, dev, output_dir, run_info, callbacks)
        self.search = search
        self.gates: LayerGates = layer_gates_of(model.method, "the bi-level gate search")
        self.arch_params = self.gates.architecture_parameters()
        if not self.arch_params:  # gates frozen by a fixed architecture (selected_layers, random_layers)
            raise TrainingError(f"method {type(model.method).name} has no architecture parameters to search; "
                                "drop selected_layers and random_layers to search the gates")
        if not val:
            raise ConfigError("the validation split is empty; the gates cannot be trained on it")
        self.val_items = val
        self.arch_optimizer = torch.optim.Adam(self.arch_params, lr=search.arch_lr, betas=(0.5, 0.999),
                                               weight_decay=search.arch_weight_decay)
        # every search step's gate probabilities (after its architecture update) and the gate-logit gradient
        # that moved them: the trajectory the dev-time history (every eval_every steps) only samples
        self.gate_trace: list[dict[str, Any]] = []
        # the gate logits after the latest architecture step: the best-on-dev restore at the end of fit()
        # rewinds the gates with the weights, and a search told to choose from its last step needs them back
        self.last_gate_logits: list[torch.Tensor] | None = None

    # ------------------------------------------------------------------ data
    def val_rows_at(self, step: int) -> list[int]:
        """The gate step's validation rows (every process's), from (seed, epoch) alone; every row, in order,
        with ``arch_batch`` 0."""
        n = len(self.val_items)
        if self.search.arch_batch == 0:
            return list(range(n))
        size = self.config.batch_size if self.search.arch_batch is None else self.search.arch_batch
        epoch, pos = divmod(step, math.ceil(n / size))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.config.seed * 7_919 + epoch))
        return [int(i) for i in order[pos * size:(pos + 1) * size].tolist()]

    def val_batch_at(self, step: int) -> Batch:
        """This process's validation batch of the step (all of it in one process)."""
        idx = self.parallel.share(self.val_rows_at(step))
        return batches([self.val_items[i] for i in idx], len(idx), self.model.pad_id, self.model.left_pad)[0]

    def data_parallel_refusal(self) -> str | None:
        if self.search.second_order:  # its unrolled weight step would see one process's rows, not the batch's
            return "the second-order gate search (--second-order) does not run data-parallel"
        return None

    # ------------------------------------------------------------------ losses
    def consistency_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor:
        """KL from the discretised top-K model's (fixed) predictions to the supernet's."""
        gates = self.gates
        chosen = gates.select_layers(min(self.search.budget, len(gates.candidate_layers)), self.search.threshold)
        with gates.discretised(chosen), torch.no_grad():
            target = self.model(batch).logits.softmax(-1)  # (B, C)
        return F.kl_div(logits.log_softmax(-1), target, reduction="batchmean")

    def loss(self, batch: Batch, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        out = functional_call(self.model, params, (batch,)) if params is not None else self.model(batch)
        loss = out.loss
        assert loss is not None
        if self.search.consistency > 0:
            loss = loss + self.search.consistency * self.consistency_loss(batch, out.logits)
        return loss

    # ------------------------------------------------------------------ one step
    def training_step(self, batch: Batch, step: int) -> torch.Tensor:
        val = self.val_batch_at(step).to(self.device)
        self.arch_optimizer.zero_grad(set_to_none=True)
        grads = self._second_order_grads(batch, val) if self.search.second_order else torch.autograd.grad(
            self.loss(val), self.arch_params)
        if self.parallel.active:  # the whole validation batch's gate gradient, on every process
            rows = self.val_rows_at(step)
            mine = self.parallel.share(rows)
            grads = tuple(self.parallel.reduce_sum(grads, self.parallel.weight(rows, len(mine), len(rows))))
        for p, g in zip(self.arch_params, grads, strict=True):
            p.grad = g
        self.arch_optimizer.step()
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.last_gate_logits = [p.detach().clone() for p in self.arch_params]
        self.gate_trace.append({"step": step + 1, "gates": [round(float(p), 6) for p in self.gates.probabilities()],
                                "grad": [float(f"{float(g):.4g}") for g in torch.cat([g.reshape(-1) for g in grads])]})
        loss = self.loss(batch)
        self.accelerator.backward(loss)
        for p in self.arch_params:
            p.grad = None  # the weight optimizer must never move the gates
        return loss.detach()

    def _second_order_grads(self, batch: Batch, val: Batch) -> tuple[torch.Tensor, ...]:
        """d L_val(w - xi * dL_train/dw, a) / da through the unrolled step."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        arch_ids = {id(p) for p in self.arch_params}
        weights = {n: p for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in arch_ids}
        # fused attention kernels have no double backward; the math kernel does
        with sdpa_kernel(SDPBackend.MATH):
            grads = torch.autograd.grad(self.loss(batch), list(weights.values()), create_graph=True, allow_unused=True)
            unrolled = {n: (w - self.search.unroll_lr * g if g is not None else w)
                        for (n, w), g in zip(weights.items(), grads, strict=True)}
            return torch.autograd.grad(self.loss(val, unrolled), self.arch_params)

    # ------------------------------------------------------------------ records and resume
    def restore_last_gates(self) -> None:
        """Put the last search step's gate logits back (after fit() restored the best-on-dev ones); a search
        that ran no step keeps its gates."""
        if self.last_gate_logits is None:
            return
        with torch.no_grad():
            for p, last in zip(self.arch_params, self.last_gate_logits, strict=True):
                p.copy_(last.to(p.device))

    def extra_record(self) -> dict[str, Any]:
        return {"gates": [round(float(p), 6) for p in self.gates.probabilities()]}

    def strategy_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = optimizer_tensors(self.arch_optimizer)
        if self.last_gate_logits is not None:
            tensors.update({f"last_gates.{i}": t.detach().cpu() for i, t in enumerate(self.last_gate_logits)})
        return tensors, {"arch_optimizer": meta, "gate_trace": self.gate_trace}

    def load_strategy_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if "arch_optimizer" in meta:
            restore_optimizer(self.arch_optimizer, tensors, meta["arch_optimizer"])
        self.gate_trace = list(meta.get("gate_trace", []))  # a checkpoint written before traces: none
        if f"last_gates.{len(self.arch_params) - 1}" in tensors:
            self.last_gate_logits = [tensors[f"last_gates.{i}"].clone() for i in range(len(self.arch_params))]
