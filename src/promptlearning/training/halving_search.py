"""SPT's second way to choose the layers: judge candidate layer sets the way they will be used, alone.

The gate search scores each layer by its use inside a supernet in which every candidate layer's
generator trains at once. On all-mpnet-base-v2 the layers the gates leaned to came from the block of
four whose generators retrain worst on their own (benchmarks/results/mpnet_spt.md, "Thirteenth and
fourteenth sessions"): the supernet's preference need not predict the retrained model's accuracy. Successive
halving asks the retrained model's question directly. It draws random K-layer sets, trains each one
alone for a few steps on the weight part of the few-shot data, scores it on the held-out part, keeps
the better half, and trains the survivors again for twice as many steps, until one set is left. Each
rung retrains from scratch, so a set's score never depends on the order in which sets were tried.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from promptlearning.data.batching import Encoded, batches
from promptlearning.errors import TrainingError
from promptlearning.model import PromptModel
from promptlearning.seeding import seed_everything
from promptlearning.training.config import TrainConfig
from promptlearning.training.gate_search import SearchConfig, split_for_search
from promptlearning.training.trainer import Trainer


@dataclasses.dataclass
class ScoredSet:
    """One layer set after one rung: the held-out part's accuracy and mean cross-entropy."""

    layers: list[int]
    val_accuracy: float
    val_loss: float | None  # None: diverged
    diverged: bool = False  # its training loss exploded: ranked last whatever its score


def candidate_sets(layers: Sequence[int], budget: int, count: int, seed: int, blocks: bool = False) -> list[list[int]]:
    """``count`` distinct ``budget``-layer subsets of ``layers`` drawn with ``seed`` (every subset, in order,
    when there are no more than ``count`` of them). With ``blocks``, every run of ``budget`` consecutive
    candidates comes first, and the ``count`` random sets are drawn beside them: fixed blocks are the
    baselines a layer search must beat (on mpnet-base and cr the middle block was the best K = 4 choice
    at every seed, and 8 random sets never contained it)."""
    ordered = sorted(layers)
    chosen = [ordered[i:i + budget] for i in range(len(ordered) - budget + 1)] if blocks else []
    seen = {tuple(c) for c in chosen}
    if math.comb(len(layers), budget) <= count + len(chosen):
        return chosen + [list(c) for c in itertools.combinations(ordered, budget) if c not in seen]
    gen = torch.Generator().manual_seed(seed)
    wanted = len(chosen) + count
    while len(chosen) < wanted:
        pick = tuple(sorted(layers[i] for i in torch.randperm(len(layers), generator=gen)[:budget].tolist()))
        if pick not in seen:
            seen.add(pick)
            chosen.append(list(pick))
    return chosen


@torch.no_grad()
def validation_score(model: PromptModel, items: Sequence[Encoded], batch_size: int) -> tuple[float, float]:
    """Accuracy and mean loss (the head's own training loss) on ``items``; the loss breaks accuracy ties,
    which are common on a validation part of 16 examples."""
    was_training = model.training
    model.eval()
    right, loss_sum = 0, 0.0
    for batch in batches(list(items), batch_size, model.pad_id, model.left_pad):
        batch = batch.to(model.device)
        gold = batch.labels
        assert gold is not None
        out = model(batch)
        assert out.loss is not None
        right += int((out.logits.argmax(-1) == gold).sum())
        loss_sum += float(out.loss) * len(gold)  # the head's loss is a batch mean
    model.train(was_training)
    return right / len(items), loss_sum / len(items)


def halving_search(build: Callable[[list[int]], PromptModel], layers: Sequence[int], train_cfg: TrainConfig,
                   search: SearchConfig, train: list[Encoded], num_labels: int,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Successive halving over ``search.candidates`` random ``search.budget``-layer sets of ``layers``.

    ``build(layers)`` returns a fresh model whose prompts sit on exactly those layers. Returns the chosen
    layers, the rungs (each set's steps, validation accuracy and loss), the training steps spent in all,
    how many sets were drawn and the seconds taken."""
    weights_part, val_part = split_for_search(train, search.val_fraction, num_labels, train_cfg.seed)
    sets = candidate_sets(layers, search.budget, search.candidates, train_cfg.seed, search.blocks)
    drawn = len(sets)
    started = time.perf_counter()
    steps, spent = search.rung_steps, 0
    rungs: list[dict[str, Any]] = []
    while len(sets) > 1:
        scored: list[ScoredSet] = []
        for chosen in sets:
            seed_everything(train_cfg.seed)  # every set starts from the same draw of its generators' seed
            model = build(chosen)
            cfg = dataclasses.replace(train_cfg, max_steps=steps, eval_every=steps, quiet=True)
            try:
                Trainer(model, cfg, weights_part, []).fit()
            except TrainingError as exc:  # a set whose training diverges loses; the search goes on
                log(f"halving: layers {chosen} dropped at {steps} steps ({exc})")
                scored.append(ScoredSet(chosen, 0.0, None, diverged=True))
            else:
                acc, loss = validation_score(model, val_part, train_cfg.eval_batch_size)
                scored.append(ScoredSet(chosen, acc, loss))
            spent += steps
            del model
        ranked = sorted(scored, key=lambda s: (s.diverged, -s.val_accuracy, s.val_loss or 0.0))  # stable: ties keep draw order
        rungs.append({"steps": steps, "sets": [dataclasses.asdict(s) for s in scored]})
        log(f"halving rung of {steps} steps (layers: held-out accuracy / loss): " + ", ".join(
            f"{s.layers} diverged" if s.val_loss is None else f"{s.layers} {s.val_accuracy:.3f}/{s.val_loss:.3f}"
            for s in ranked))
        sets = [s.layers for s in ranked[: (len(ranked) + 1) // 2]]
        steps *= 2
    return {"chosen_layers": sets[0], "rungs": rungs, "steps": spent, "sets": drawn,
            "seconds": time.perf_counter() - started}
