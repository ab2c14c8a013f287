"""Text generation from a prompted causal LM.

The first step runs the whole prompt through the injector, so every kind of prompt (input
prompts, deep prompts, key/value prefixes, template slots) is applied exactly as in training;
later steps feed only the newest token and reuse the keys and values cached by the first, which
in a causal LM is what re-running the sequence would compute again. A method whose prompts are
made from the input (instance-aware generators: ``reads_input``) could change its prompt as the
text grows, so for it every step re-runs the whole sequence, as training would see it. Rows are
left-padded, so the last position is each row's newest token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.injection import continue_cached, run_backbone, start_cached

if TYPE_CHECKING:
    from promptlearning.model import PromptModel


def check_generator(model: PromptModel) -> None:
    """Refuse, in one line, a backbone that cannot generate (an encoder, or no LM head)."""
    backbone = model.backbone
    if not backbone.info.is_decoder or backbone.lm_head is None:
        raise ConfigError(f"generation needs a causal LM backbone with an LM head (e.g. smollm2-135m); "
                          f"{backbone.info.name} is an encoder: use predict to classify instead")


@torch.no_grad()
def generate(model: PromptModel, texts: Sequence[str], *, max_new_tokens: int = 20, do_sample: bool = False,
             temperature: float = 1.0, top_k: int = 0, seed: int | None = None,
             stop_at_eos: bool = True) -> list[list[int]]:
    """New token ids per input (greedy, or sampling with temperature and top-k)."""
    check_generator(model)
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a finite number > 0 (got {temperature})")
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0 (got {top_k}); 0 samples from the whole vocabulary")
    if not texts or any(not t.strip() for t in texts):
        raise ConfigError("every text to continue must be non-empty; give at least one word")
    items = model.encode([Example(t, 0) for t in texts])
    return generate_encoded(model, items, max_new_tokens=max_new_tokens, batch_size=len(items), do_sample=do_sample,
                            temperature=temperature, top_k=top_k, seed=seed, stop_at_eos=stop_at_eos)


@torch.no_grad()
def generate_encoded(model: PromptModel, items: Sequence[Encoded], *, max_new_tokens: int, batch_size: int = 16,
                     do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, seed: int | None = None,
                     stop_at_eos: bool = True, until_line_end: bool = False) -> list[list[int]]:
    """New token ids per tokenised row, ``batch_size`` rows at a time. ``until_line_end`` also ends a row
    at the first line break after some text (one-line answers: nothing after it is read)."""
    check_generator(model)
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    was_training = model.training
    model.eval()
    out: list[list[int]] = []
    for batch in batches(items, max(1, batch_size), model.pad_id, left_pad=True):
        out += _generate_batch(model, batch.to(model.device), max_new_tokens, do_sample, temperature, top_k,
                               generator, stop_at_eos, until_line_end)
    model.train(was_training)
    return out


def _generate_batch(model: PromptModel, batch: Batch, max_new_tokens: int, do_sample: bool, temperature: float,
                    top_k: int, generator: torch.Generator | None, stop_at_eos: bool,
                    until_line_end: bool) -> list[list[int]]:
    backbone = model.backbone
    assert backbone.lm_head is not None
    tokenizer = backbone.tokenizer
    eos = tokenizer.eos_token_id
    rows = len(batch)
    # a method whose prompts read the input re-runs the whole sequence; every other continues from the cache
    cached = not model.method.reads_input
    ids, mask, slots = batch.input_ids, batch.attention_mask, batch.prompt_slots
    cache: Any = None
    seen = mask  # (B, P + L + t): the cached path's mask over the prompt positions and every token so far
    token = ids[:, -1]
    done = torch.zeros(rows, dtype=torch.bool, device=ids.device)
    out: list[list[int]] = [[] for _ in range(rows)]
    for _ in range(max_new_tokens):
        if not cached:
            step = Batch(input_ids=ids, attention_mask=mask, task_ids=batch.task_ids, prompt_slots=slots)
            hidden, _, _ = run_backbone(backbone, model.method, step)  # (B, P + L, H)
        elif cache is None:
            step = Batch(input_ids=ids, attention_mask=mask, task_ids=batch.task_ids, prompt_slots=slots)
            hidden, seen, cache = start_cached(backbone, model.method, step)  # (B, P + L, H)
        else:
            hidden = continue_cached(backbone, model.method, cache, token.unsqueeze(-1), seen)  # (B, 1, H)
        logits = backbone.lm_head(hidden[:, -1]).float()  # (B, V)
        if do_sample:
            logits = logits / temperature
            if top_k:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            token = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)  # (B,)
        else:
            token = logits.argmax(-1)  # (B,)
        token = torch.where(done, torch.full_like(token, model.pad_id), token)
        ended = torch.zeros_like(done)
        for row, t in enumerate(token.tolist()):
            if not done[row]:
                out[row].append(t)
                if until_line_end and _ends_line(tokenizer, out[row]):
                    ended[row] = True
        if stop_at_eos and eos is not None:
            ended |= token == eos
        column = (~done).long().unsqueeze(-1)  # a row already finished attends to nothing it is given
        mask = torch.cat([mask, column], dim=1)
        seen = torch.cat([seen, column], dim=1)
        done |= ended
        ids = torch.cat([ids, token.unsqueeze(-1)], dim=1)
        if slots is not None:
            slots = torch.cat([slots, slots.new_full((rows, 1), -1)], dim=1)
        if done.all():
            break
    return out


def _ends_line(tokenizer: Any, row: list[int]) -> bool:
    """Whether the newest token of ``row`` breaks a line after some text (a leading line break does not)."""
    newest = tokenizer.decode(row[-1:], skip_special_tokens=True)
    if "\n" not in newest:
        return False
    before = tokenizer.decode(row[:-1], skip_special_tokens=True) + newest.split("\n", 1)[0]
    return bool(before.strip())


def generate_text(model: PromptModel, texts: Sequence[str], **kwargs: object) -> list[str]:
    """Like :func:`generate`, decoded to strings (special tokens dropped)."""
    ids = generate(model, texts, **kwargs)  # type: ignore[arg-type]
    return [model.backbone.tokenizer.decode(row, skip_special_tokens=True) for row in ids]
