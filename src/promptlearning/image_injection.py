"""The image counterpart of :func:`promptlearning.injection.run_backbone`: prompts into an image backbone.

Three places a prompt can enter a picture, each asked of the method: in pixel space before the
backbone (:meth:`~promptlearning.methods.base.PromptMethod.pixel_prompt`, the visual prompt), as
prompt tokens beside a vision transformer's patch tokens (``input_prompt`` and ``layer_prompt``,
placed by the same pre-hooks as for text: VPT shallow and deep), and as context words of the
class-name prompts of CLIP's text tower (``class_context``: CoOp, CoCoOp), which the CLIP head reads
from the context this module fills.
"""

from __future__ import annotations

import torch

from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch
from promptlearning.errors import ConfigError
from promptlearning.image_backbones import ImageBackbone
from promptlearning.injection import layer_hooks
from promptlearning.methods.base import PromptMethod


def run_image_backbone(backbone: ImageBackbone, method: PromptMethod,
                       batch: Batch) -> tuple[torch.Tensor, torch.Tensor, PromptContext]:
    """Forward images with the method's prompts in place.

    Returns the hidden states (B, P + S, H) (S: the patch and CLS tokens, or 1 for a CNN's pooled
    features), their mask (B, P + S) and the context (``text_mask`` (B, S) marks the image's positions,
    so the classification head's pooling reads them as it reads a text's)."""
    if batch.pixel_values is None:
        raise ConfigError(f"{backbone.name} is an image backbone and this batch has no images; give image paths")
    if method.num_template_tokens or method.num_prefix_positions:
        raise ConfigError(f"method {type(method).name} prompts a text's tokens; on images use --method vpt, "
                          "visual_prompt, coop, cocoop, linear_probe or finetune")
    weight = backbone.identity_weight()
    pixels = batch.pixel_values.to(weight.device, weight.dtype) / 255.0  # (B, 3, S, S) in [0, 1]
    prompt_len = method.num_prompt_positions
    ctx = PromptContext(batch_size=len(batch), device=pixels.device, dtype=pixels.dtype, task_ids=batch.task_ids,
                        task_repr=batch.task_repr, num_prompt_positions=prompt_len)
    prompted = method.pixel_prompt(pixels, ctx)
    pixels = backbone.normalize(prompted if prompted is not None else pixels)
    tokens = backbone.tokens(pixels)  # (B, S, H) or None
    if tokens is None:
        if prompt_len:
            raise ConfigError(f"method {type(method).name} adds prompt tokens, and {backbone.name} is a convolutional "
                              "network without tokens; use --method visual_prompt, linear_probe or finetune")
        hidden = backbone.pooled(pixels)  # (B, 1, H)
    else:
        prompt = method.input_prompt(ctx) if prompt_len else None
        if prompt_len and prompt is None:
            prompt = tokens.new_zeros(ctx.batch_size, prompt_len, tokens.shape[-1])  # (B, P, H)
        if prompt is not None:
            tokens = torch.cat([prompt.to(tokens.dtype), tokens], dim=1)  # (B, P + S, H)
        with layer_hooks(backbone, method, ctx):
            hidden = backbone.run_layers(tokens)  # (B, P + S, H)
    positions = hidden.shape[1] - prompt_len
    ctx.text_mask = torch.ones(ctx.batch_size, positions, dtype=torch.long, device=hidden.device)  # (B, S)
    mask = torch.ones(ctx.batch_size, hidden.shape[1], dtype=torch.long, device=hidden.device)  # (B, P + S)
    if backbone.info.has_text_tower:
        ctx.image_features = backbone.image_features(hidden, prompt_len)  # (B, D)
        ctx.class_context = method.class_context(ctx)  # (B or 1, M, H_text) or None
    return hidden, mask, ctx
