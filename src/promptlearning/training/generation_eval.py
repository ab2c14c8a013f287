"""Evaluating a generator: greedy answers scored as texts, and the cheap teacher-forced dev score.

Test scores come from what the model actually writes: greedy decoding from each input in the
model's template, at most the longest target's tokens plus :data:`ANSWER_MARGIN` new tokens,
the answer being the first line of the text (a trained prompt ends its answer with the
end-of-text token; the untrained baselines run on, and an in-context prompt goes on to write
the next question: both are cut at the line break, the same rule for every method).

Picking the best training step needs a score at every evaluation, where generating would cost a
decoding loop each time: the dev score is teacher-forced instead, the share of target tokens
(end-of-text included) the model ranks first given the gold tokens before them, with the mean
target loss beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from promptlearning.data.target_batching import TargetEncoded, encode_prompts, target_batches, target_ids
from promptlearning.data.templates import Template
from promptlearning.data.text_pairs import TextPair
from promptlearning.data.truncation import TruncationCount
from promptlearning.errors import ConfigError
from promptlearning.generation import generate_encoded
from promptlearning.training.generation_metrics import text_scores

if TYPE_CHECKING:
    from promptlearning.model import PromptModel

#: New tokens allowed beyond the longest target's (a near miss may take a token or two more).
ANSWER_MARGIN = 8


def model_template(model: PromptModel) -> Template:
    """The template a generator's inputs are written with (``{text_a}`` alone when it has none)."""
    return Template.parse(model.template_of(0) or "{text_a}")


def answer_text(text: str) -> str:
    """The answer in a generated text: its first line that holds anything, stripped."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


@torch.no_grad()
def generate_answers(model: PromptModel, inputs: Sequence[str], max_new_tokens: int, batch_size: int = 16,
                     count: TruncationCount | None = None) -> list[str]:
    """Greedy answers to ``inputs``, each input cut so that the row and its answer fit the model's max length."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
    tokenizer = model.backbone.tokenizer
    rows = encode_prompts(tokenizer, model_template(model), inputs, model.max_length - max_new_tokens,
                          truncation=model.truncation, count=count)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))  # similar lengths: less padding
    ids = generate_encoded(model, [rows[i] for i in order], max_new_tokens=max_new_tokens, batch_size=batch_size,
                           until_line_end=True)
    out = [""] * len(rows)
    for i, row in zip(order, ids, strict=True):
        out[i] = answer_text(tokenizer.decode(row, skip_special_tokens=True))
    return out


def answer_budget(model: PromptModel, targets: Sequence[str]) -> int:
    """New tokens to generate for these targets: the longest one's tokens (end-of-text included) plus the margin."""
    template = model_template(model)
    return max(len(target_ids(model.backbone.tokenizer, template, t)) for t in targets) + ANSWER_MARGIN


def evaluate_generation(model: PromptModel, pairs: Sequence[TextPair], batch_size: int = 16,
                        max_new_tokens: int | None = None) -> dict[str, Any]:
    """:func:`~promptlearning.training.generation_metrics.text_scores` of the model's greedy answers, with
    ``inputs_cut`` (inputs cut to fit) and ``max_new_tokens``; ``examples`` shows the first five answers."""
    if not pairs:
        raise ConfigError("nothing to evaluate: the split has no pairs")
    budget = max_new_tokens or answer_budget(model, [p.target for p in pairs])
    count = TruncationCount()
    answers = generate_answers(model, [p.input for p in pairs], budget, batch_size, count)
    scores = text_scores(answers, [p.target for p in pairs])
    scores.update({"max_new_tokens": budget, "inputs_cut": count.cut,
                   "examples": [{"input": p.input, "target": p.target, "answer": a}
                                for p, a in list(zip(pairs, answers, strict=True))[:5]]})
    return scores


@torch.no_grad()
def teacher_forced_scores(model: PromptModel, items: Sequence[TargetEncoded], batch_size: int = 32) -> dict[str, Any]:
    """``accuracy``: the share of target tokens ranked first given the gold tokens before them; ``loss``:
    the mean cross-entropy of the target tokens (both over every target token of ``items``)."""
    was_training = model.training
    model.eval()
    right = total = 0
    loss_sum = 0.0
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    for rows in _by_scores(order, [len(items[i].input_ids) for i in order], batch_size, model.backbone.info.vocab_size):
        [batch] = target_batches([items[i] for i in rows], len(rows), model.pad_id, model.left_pad)
        batch = batch.to(model.device)
        assert batch.labels is not None
        gold = batch.labels[:, 1:]  # (B, L - 1)
        batch.labels = None  # the loss is computed here, per token
        logits = model(batch).logits[:, :-1].float()  # (B, L - 1, V): position t predicts token t + 1
        scored = gold != -100
        right += int((logits.argmax(-1).eq(gold) & scored).sum())
        total += int(scored.sum())
        loss_sum += float(torch.nn.functional.cross_entropy(logits[scored], gold[scored], reduction="sum"))
    model.train(was_training)
    return {"accuracy": right / max(total, 1), "loss": loss_sum / max(total, 1), "target_tokens": total, "n": len(items)}


#: Most next-token scores (rows x positions x vocabulary) one teacher-forced batch may hold: an in-context
#: prompt makes rows of ~1000 positions, and 32 of them would hold 6 GB of scores.
MAX_BATCH_SCORES = 64_000_000


def _by_scores(order: Sequence[int], lengths: Sequence[int], batch_size: int, vocab: int) -> list[list[int]]:
    """``order`` cut into batches of at most ``batch_size`` rows whose scores stay under :data:`MAX_BATCH_SCORES`
    (``lengths`` ascending, so a batch's widest row is its last)."""
    batches: list[list[int]] = []
    for index, length in zip(order, lengths, strict=True):
        if batches and len(batches[-1]) < batch_size and (len(batches[-1]) + 1) * length * vocab <= MAX_BATCH_SCORES:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches
