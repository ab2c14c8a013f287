"""Accuracy and macro-F1, and evaluation of a model on examples."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from promptlearning.data.batching import Encoded, token_batches
from promptlearning.launcher import is_main_process

if TYPE_CHECKING:
    from promptlearning.ensemble import EnsembleModel
    from promptlearning.model import PromptModel


def accuracy(pred: Sequence[int], gold: Sequence[int]) -> float:
    return sum(int(p == g) for p, g in zip(pred, gold, strict=True)) / max(len(gold), 1)


def macro_f1(pred: Sequence[int], gold: Sequence[int], num_labels: int) -> float:
    """Unweighted mean of per-class F1, the fair score on unbalanced tasks."""
    scores = []
    for c in range(num_labels):
        tp = sum(1 for p, g in zip(pred, gold, strict=True) if p == c and g == c)
        fp = sum(1 for p, g in zip(pred, gold, strict=True) if p == c and g != c)
        fn = sum(1 for p, g in zip(pred, gold, strict=True) if p != c and g == c)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / max(num_labels, 1)


def majority_accuracy(train_labels: Sequence[int], gold: Sequence[int]) -> float:
    """Accuracy of always answering the most frequent training label."""
    if not train_labels:
        return 0.0
    top = max(set(train_labels), key=list(train_labels).count)
    return accuracy([top] * len(gold), gold)


@torch.no_grad()
def predict_encoded(model: PromptModel | EnsembleModel, items: Sequence[Encoded], batch_size: int = 64,
                    progress: bool = False) -> list[int]:
    """Predicted class per example, in the order given (``progress``: a bar with the time left on a terminal).

    Examples run shortest first so each batch pads to a similar length: on a test set of mixed
    lengths this skips much of the padding compute, and masking (with positions taken from the
    mask) keeps a row's prediction independent of its batch-mates. Batches are capped in padded
    tokens as well as rows (:func:`~promptlearning.data.batching.token_batches`), so long inputs
    on a big backbone take smaller batches instead of running out of memory.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    sorted_preds: list[int] = []
    bar = tqdm(total=len(items), desc="evaluate", unit="example", disable=not (progress and stderr_is_terminal()),
               dynamic_ncols=True)
    for batch in token_batches(items, batch_size, model.pad_id, model.left_pad, order=order):
        batch.labels = None  # no loss needed to predict
        sorted_preds.extend(model(batch.to(model.device)).logits.argmax(-1).tolist())
        bar.update(len(batch))
    bar.close()
    preds = [0] * len(items)
    for i, p in zip(order, sorted_preds, strict=True):
        preds[i] = p
    model.train(was_training)
    return preds


def stderr_is_terminal() -> bool:
    """Whether progress goes to a terminal (a bar) rather than a log file or pipe (lines, or nothing).
    False in a data-parallel run's other processes: rank 0 alone shows progress."""
    try:
        return sys.stderr.isatty() and is_main_process()
    except (AttributeError, ValueError):
        return False


def evaluate(model: PromptModel | EnsembleModel, items: Sequence[Encoded], batch_size: int = 64,
             progress: bool = False) -> dict[str, float]:
    """Accuracy and macro-F1 of the model on tokenised examples (``progress``: see :func:`predict_encoded`)."""
    preds = predict_encoded(model, items, batch_size, progress)
    gold = [x.label for x in items]
    return {"accuracy": accuracy(preds, gold), "macro_f1": macro_f1(preds, gold, getattr(model, "num_classes", len(model.labels))), "n": len(gold)}
