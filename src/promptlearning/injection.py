"""The only code that touches backbone modules.

A method says what prompt goes where; this module does the surgery. It prepends P prompt
positions to the sequence (extending the attention mask and giving explicit position ids),
fills them with the method's input prompt (or zeros), and for every layer where the method
may have a prompt installs a forward pre-hook, for the duration of one forward, that
replaces those positions in the layer's incoming hidden states. Hooks, not patched
``forward`` methods, so several models can share one backbone and nothing leaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import DynamicCache

from promptlearning.backbones import Backbone
from promptlearning.data.batching import Batch
from promptlearning.errors import ConfigError
from promptlearning.methods.base import PromptContext, PromptMethod

# Families whose learned position table starts after the padding index.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "data2vec-text"}


def make_context(backbone: Backbone, method: PromptMethod, batch: Batch) -> PromptContext:
    embeds = backbone.embed(batch.input_ids)  # (B, L, H)
    return PromptContext(
        batch_size=len(batch),
        device=embeds.device,
        dtype=embeds.dtype,
        task_ids=batch.task_ids,
        task_repr=batch.task_repr,
        text_embeds=embeds,
        text_mask=batch.attention_mask,
        num_prompt_positions=method.num_prompt_positions,
        prompt_slots=batch.prompt_slots,
    )


def position_ids_for(backbone: Backbone, mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only attended tokens, so left padding and prompts both work."""
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, S)
    return positions + _position_offset(backbone)


def _position_offset(backbone: Backbone) -> int:
    if backbone.info.model_type not in _OFFSET_POSITIONS:
        return 0
    config: Any = backbone.model.config
    return int(config.pad_token_id or 1) + 1


def check_length(backbone: Backbone, prompt_len: int, text_len: int) -> None:
    limit = backbone.info.max_positions - _position_offset(backbone)
    if prompt_len + text_len > limit:
        raise ConfigError(
            f"prompt of {prompt_len} plus input of {text_len} tokens exceeds the {limit} positions "
            f"{backbone.info.name} allows; lower --max-length or the prompt length (--option num_tokens=...)"
        )


def check_kv_prefix(backbone: Backbone, method: PromptMethod) -> None:
    """Key/value prefixes need attention that reads a cache; refuse a family without one: it would crash
    on the longer mask or, worse, ignore the prefix."""
    if method.num_prefix_positions and not backbone.reads_kv_cache:
        raise ConfigError(
            f"{backbone.info.name} ({backbone.info.model_type}) has no key/value cache, so it cannot take the "
            f"key/value prefixes of {type(method).name}; use --method p_tuning_v2 (per-layer prompts) instead"
        )


def fill_template_slots(embeds: torch.Tensor, slots: torch.Tensor, prompt: torch.Tensor | None) -> torch.Tensor:
    """Put the method's pseudo-token vectors (B, T, H) at the template's [P] positions of (B, L, H)."""
    if prompt is None:
        return embeds
    index = slots.clamp(min=0).unsqueeze(-1).expand(-1, -1, embeds.shape[-1])  # (B, L, H)
    placed = torch.gather(prompt.to(embeds.dtype), 1, index)  # (B, L, H)
    return torch.where(slots.unsqueeze(-1) >= 0, placed, embeds)


@contextmanager
def layer_hooks(backbone: Backbone, method: PromptMethod, ctx: PromptContext) -> Iterator[None]:
    """Install the pre-hooks that replace prompt positions, and always remove them."""
    handles = []
    prompt_len = method.num_prompt_positions

    def make_hook(layer: int) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            hidden = args[0] if args else kwargs["hidden_states"]  # (B, P + L, H)
            new = method.layer_prompt(layer, hidden, ctx)  # (B, P, H) or None
            if new is None:
                return None
            hidden = torch.cat([new.to(hidden.dtype), hidden[:, prompt_len:]], dim=1)
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return hook

    try:
        if prompt_len:
            for layer in method.prompt_layers:
                handles.append(backbone.layers[layer].register_forward_pre_hook(make_hook(layer), with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


def run_backbone(backbone: Backbone, method: PromptMethod, batch: Batch,
                 ctx: PromptContext | None = None) -> tuple[torch.Tensor, torch.Tensor, PromptContext]:
    """Forward the backbone with the method's prompts in place.

    Returns the last hidden states (B, P + L, H), the full attention mask (B, P + L) and
    the context (heads read the prompt length and the text mask from it).
    """
    hidden, mask, ctx, _ = _forward(backbone, method, batch, ctx, keep_cache=False)
    return hidden, mask, ctx


def start_cached(backbone: Backbone, method: PromptMethod, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """:func:`run_backbone` that also keeps every position's keys and values (the method's prefix, its
    prompt positions as its hooks made them, the input) for :func:`continue_cached`.

    Continuing from the cache equals re-running the whole sequence only when the method's prompts do not
    depend on the tokens that follow them (``reads_input`` false): in a causal LM nothing earlier sees
    later tokens, so the cached keys and values are what a re-run would compute again."""
    hidden, mask, _, cache = _forward(backbone, method, batch, None, keep_cache=True)
    return hidden, mask, cache


def continue_cached(backbone: Backbone, method: PromptMethod, cache: Any, token_ids: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """Hidden states (B, N, H) of ``token_ids`` (B, N) appended to the cached sequence; ``mask`` (B, P + L + N)
    is the whole sequence's attention mask after them (the prefix's positions excluded, as
    :func:`start_cached` returned it). The cache grows by the new positions."""
    check_length(backbone, method.num_prefix_positions, int(mask.shape[1]))
    embeds = backbone.embed(token_ids)  # (B, N, H)
    full = torch.cat([mask.new_ones(mask.shape[0], method.num_prefix_positions), mask], dim=1)
    kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": full, backbone.cache_keyword: cache,
                              "use_cache": True}
    if backbone.accepts("position_ids"):
        positions = position_ids_for(backbone, mask)[:, -token_ids.shape[1]:]  # (B, N)
        kwargs["position_ids"] = positions + int(getattr(method, "text_position_offset", 0))
    return backbone.model(**kwargs).last_hidden_state


def _forward(backbone: Backbone, method: PromptMethod, batch: Batch, ctx: PromptContext | None,
             keep_cache: bool) -> tuple[torch.Tensor, torch.Tensor, PromptContext, Any]:
    ctx = ctx or make_context(backbone, method, batch)
    prompt_len = method.num_prompt_positions
    check_length(backbone, prompt_len + method.num_prefix_positions, int(batch.input_ids.shape[1]))
    check_kv_prefix(backbone, method)
    embeds = ctx.text_embeds
    assert embeds is not None
    if batch.prompt_slots is not None and method.num_template_tokens:
        embeds = fill_template_slots(embeds, batch.prompt_slots, method.template_prompt(ctx))
    mask = batch.attention_mask
    types = batch.token_type_ids
    if prompt_len:
        prompt = method.input_prompt(ctx)
        if prompt is None:
            prompt = embeds.new_zeros(ctx.batch_size, prompt_len, embeds.shape[-1])  # (B, P, H)
        embeds = torch.cat([prompt.to(embeds.dtype), embeds], dim=1)  # (B, P + L, H)
        mask = torch.cat([mask.new_ones(ctx.batch_size, prompt_len), mask], dim=1)  # (B, P + L)
        if types is not None:
            types = torch.cat([types.new_zeros(ctx.batch_size, prompt_len), types], dim=1)
    kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": mask}
    if backbone.accepts("position_ids"):
        # a method may number the input after its key/value prefix, as PEFT does (prefix_tuning's peft_positions)
        kwargs["position_ids"] = position_ids_for(backbone, mask) + int(getattr(method, "text_position_offset", 0))
    prefix = method.kv_prefix(ctx) if method.num_prefix_positions else None
    cache = None
    if prefix is not None:
        # a fresh cache on every forward: the model fills it in place
        cache = DynamicCache(ddp_cache_data=[(k.to(embeds.dtype), v.to(embeds.dtype)) for k, v in prefix])
        ones = mask.new_ones(ctx.batch_size, method.num_prefix_positions)
        kwargs["attention_mask"] = torch.cat([ones, mask], dim=1)  # (B, P_kv + P + L)
    elif keep_cache:
        cache = DynamicCache()
    if cache is not None:
        kwargs[backbone.cache_keyword] = cache
        kwargs["use_cache"] = True
    if types is not None and backbone.accepts("token_type_ids"):
        kwargs["token_type_ids"] = types
    with layer_hooks(backbone, method, ctx):
        out = backbone.model(**kwargs)
    return out.last_hidden_state, mask, ctx, cache
