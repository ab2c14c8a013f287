"""Text generation from a prompted causal LM.

Every step re-runs the whole sequence through the injector, so every kind of prompt
(input prompts, deep prompts, instance-aware generators, key/value prefixes built afresh
each forward, template slots) is applied exactly as in training, with no separate cache
path to keep in sync. Rows are left-padded, so the last position is each row's newest token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from promptlearning.data.batching import Batch, batches
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.injection import run_backbone

if TYPE_CHECKING:
    from promptlearning.model import PromptModel


@torch.no_grad()
def generate(model: PromptModel, texts: Sequence[str], *, max_new_tokens: int = 20, do_sample: bool = False,
             temperature: float = 1.0, top_k: int = 0, seed: int | None = None,
             stop_at_eos: bool = True) -> list[list[int]]:
    """New token ids per input (greedy, or sampling with temperature and top-k)."""
    backbone = model.backbone
    if not backbone.info.is_decoder or backbone.lm_head is None:
        raise ConfigError(f"generation needs a causal LM backbone with an LM head (e.g. smollm2-135m); "
                          f"{backbone.info.name} is an encoder: use predict to classify instead")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a finite number > 0 (got {temperature})")
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0 (got {top_k}); 0 samples from the whole vocabulary")
    if not texts or any(not t.strip() for t in texts):
        raise ConfigError("every text to continue must be non-empty; give at least one word")
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    eos = backbone.tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    items = model.encode([Example(t, 0) for t in texts])
    batch = batches(items, len(items), model.pad_id, left_pad=True)[0].to(model.device)
    ids, mask, slots = batch.input_ids, batch.attention_mask, batch.prompt_slots
    done = torch.zeros(len(texts), dtype=torch.bool, device=ids.device)
    out: list[list[int]] = [[] for _ in texts]
    for _ in range(max_new_tokens):
        step = Batch(input_ids=ids, attention_mask=mask, task_ids=batch.task_ids, prompt_slots=slots)
        hidden, _, _ = run_backbone(backbone, model.method, step)  # (B, P + L, H)
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
        for row, t in enumerate(token.tolist()):
            if not done[row]:
                out[row].append(t)
        if stop_at_eos and eos is not None:
            done |= token == eos
        ids = torch.cat([ids, token.unsqueeze(-1)], dim=1)
        mask = torch.cat([mask, (~done | (token == eos)).long().unsqueeze(-1)], dim=1)
        if slots is not None:
            slots = torch.cat([slots, slots.new_full((len(texts), 1), -1)], dim=1)
        if done.all():
            break
    model.train(was_training)
    return out


def generate_text(model: PromptModel, texts: Sequence[str], **kwargs: object) -> list[str]:
    """Like :func:`generate`, decoded to strings (special tokens dropped)."""
    ids = generate(model, texts, **kwargs)  # type: ignore[arg-type]
    return [model.backbone.tokenizer.decode(row, skip_special_tokens=True) for row in ids]
