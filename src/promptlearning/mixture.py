"""Mixed-adapter batches: rows carrying different adapters of one backbone, one forward.

Serving many tasks from one frozen backbone is the point of prompts. Each row's ``task_id``
picks its adapter: every sub-method answers for the whole batch and each row keeps the
answer of its own adapter, so a row gets exactly what it would get alone. The prompt
computations are tiny next to the backbone, which now runs once for all rows instead of
once per adapter. Adapters must share the backbone and the prompt geometry (the same number
of prompt positions, prefix positions and template slots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.data.batching import Batch, batches
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.injection import run_backbone
from promptlearning.methods.base import PromptContext, PromptMethod


def _pick(options: list[torch.Tensor], task_ids: torch.Tensor) -> torch.Tensor:
    """Row b of the result is row b of options[task_ids[b]]; options are (B, ...)."""
    stacked = torch.stack(options)  # (N, B, ...)
    return stacked[task_ids, torch.arange(task_ids.shape[0], device=task_ids.device)]


class MethodMixture(PromptMethod):
    """A prompt method whose answer for each row comes from that row's adapter."""

    name = ""  # never registered: built from adapters, not from a config

    def __init__(self, methods: Sequence[PromptMethod], backbone: Backbone) -> None:
        nn.Module.__init__(self)
        self.info = backbone.info
        self.methods = nn.ModuleList(methods)  # registered, so .to(device) moves them
        self._methods: list[PromptMethod] = list(methods)
        for attr in ("num_prompt_positions", "num_prefix_positions", "num_template_tokens"):
            values = {getattr(m, attr) for m in methods}
            if len(values) > 1:
                raise ConfigError(f"adapters differ in {attr} ({sorted(values)}); mix only adapters with the same "
                                  "prompt length and template")
        self._layers = sorted({layer for m in methods for layer in m.prompt_layers})

    @property
    def num_prompt_positions(self) -> int:
        return self._methods[0].num_prompt_positions

    @property
    def num_prefix_positions(self) -> int:
        return self._methods[0].num_prefix_positions

    @property
    def num_template_tokens(self) -> int:
        return self._methods[0].num_template_tokens

    @property
    def prompt_layers(self) -> list[int]:
        return list(self._layers)

    def _ids(self, ctx: PromptContext) -> torch.Tensor:
        assert ctx.task_ids is not None, "mixed batches need task ids"
        return ctx.task_ids

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        outs = [m.input_prompt(ctx) for m in self._methods]
        if all(o is None for o in outs):
            return None
        zeros = torch.zeros(ctx.batch_size, self.num_prompt_positions, self.info.hidden_size, device=ctx.device,
                            dtype=ctx.dtype)
        return _pick([o if o is not None else zeros for o in outs], self._ids(ctx))

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        outs = [m.layer_prompt(layer, hidden, ctx) for m in self._methods]
        if all(o is None for o in outs):
            return None
        flowing = hidden[:, : self.num_prompt_positions]  # (B, P, H) what a method without a prompt here keeps
        return _pick([o if o is not None else flowing for o in outs], self._ids(ctx))

    def template_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        outs = [m.template_prompt(ctx) for m in self._methods]
        if any(o is None for o in outs):
            return None
        return _pick([o for o in outs if o is not None], self._ids(ctx))

    def kv_prefix(self, ctx: PromptContext) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        outs = [m.kv_prefix(ctx) for m in self._methods]
        if any(o is None for o in outs):
            return None
        ids = self._ids(ctx)
        per_layer = zip(*[o for o in outs if o is not None], strict=True)
        return [(_pick([k for k, _ in layer], ids), _pick([v for _, v in layer], ids)) for layer in per_layer]


class AdapterMixture(nn.Module):
    """Several adapters of one backbone served together; ``task_ids`` pick each row's adapter."""

    def __init__(self, models: Sequence[PromptModel]) -> None:  # noqa: F821
        super().__init__()
        if not models:
            raise ConfigError("give at least one adapter to mix")
        backbone = models[0].backbone
        if any(m.backbone is not backbone for m in models):
            raise ConfigError("mixed adapters must share one backbone object; load them with backbone=...")
        if len({m.template for m in models}) > 1:
            raise ConfigError("mixed adapters must use the same template")
        self.backbone = backbone
        self.models = list(models)
        self.method = MethodMixture([m.method for m in models], backbone)
        if not all(getattr(m.head, "single_token", True) for m in models):
            raise ConfigError("adapters whose verbaliser has multi-token label words cannot be mixed in one batch; "
                              "use single-token label words or serve them separately")
        self.heads = nn.ModuleList([m.head for m in models])
        self.width = max(len(m.labels) for m in models)

    @classmethod
    def from_pretrained(cls, directories: Sequence[str | Path], backbone: Backbone) -> AdapterMixture:
        from promptlearning.model import PromptModel

        return cls([PromptModel.from_pretrained(d, backbone=backbone) for d in directories])

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits (B, C_max); a row's columns past its adapter's label count are -inf."""
        hidden, _, ctx = run_backbone(self.backbone, self.method, batch)
        outs = []
        for head in self.heads:
            logits = head(hidden, ctx)  # (B, C_i)
            pad = logits.new_full((logits.shape[0], self.width - logits.shape[1]), float("-inf"))
            outs.append(torch.cat([logits, pad], dim=1))
        return _pick(outs, batch.task_ids)

    @torch.no_grad()
    def predict(self, texts: Sequence[str], adapters: Sequence[int], batch_size: int = 32) -> list[str]:
        """The label of each text under the adapter named by its index in ``adapters``."""
        if len(texts) != len(adapters):
            raise ConfigError("give one adapter index per text")
        bad = [a for a in adapters if not 0 <= a < len(self.models)]
        if bad:
            raise ConfigError(f"adapter index {bad[0]} out of range: {len(self.models)} adapters are loaded")
        first = self.models[0]
        items = [first.encode([Example(t, 0)], task_id=a)[0] for t, a in zip(texts, adapters, strict=True)]
        preds: list[str] = []
        self.eval()
        for batch in batches(items, batch_size, first.pad_id, first.left_pad):
            logits = self(batch.to(first.device))
            preds += [self.models[a].labels[i] for a, i in zip(batch.task_ids.tolist(), logits.argmax(-1).tolist(),
                                                                 strict=True)]
        return preds


from promptlearning.model import PromptModel  # noqa: E402  (type used in signatures above)
