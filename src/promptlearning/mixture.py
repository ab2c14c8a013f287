"""Mixed-adapter batches: rows carrying different adapters of one backbone, one forward.

Serving many tasks from one frozen backbone is the point of prompts. Each row's ``task_id``
picks its adapter, and each row gathers only its own adapter's prompt, so the cost grows with
the rows, not with adapters x rows:

- a method whose answer at a site does not read the batch (prompt tuning, deep prompts, key/value
  prefixes: most methods) is asked once, when the mixture is built, and its answers are stacked
  into a bank (N, ...); a forward gathers ``bank[task_ids]``, one indexing op for every adapter;
- a method whose answer reads the batch (instance-aware generators, task-conditioned prompts) is
  asked for its own rows only, and its answers are scattered into theirs;
- each head scores only its own rows.

Which kind a method is, is found by asking it once with a context that carries no rows (no text,
no task, NaN hidden states): an answer that comes back finite read nothing of the batch.
A row gets exactly what it would get alone. One mixture is one forward, so its adapters share
the prompt geometry (prompt positions, prefix positions, template slots); :class:`AdapterFamilies`
groups any set of adapters into such families and runs one forward per family present.

The banks are a snapshot: the mixture serves inference; rebuild it (or call :meth:`MethodMixture.refresh`)
after changing an adapter's weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.image_backbones import ImageBackbone
from promptlearning.image_injection import run_image_backbone
from promptlearning.injection import run_backbone
from promptlearning.methods.base import PromptMethod

Geometry = tuple[int, int, int]  # prompt positions, key/value prefix positions, template slots


def geometry(method: PromptMethod) -> Geometry:
    """What must agree for rows to share one forward."""
    return (method.num_prompt_positions, method.num_prefix_positions, method.num_template_tokens)


def _probe_context(method: PromptMethod, device: torch.device, dtype: torch.dtype) -> PromptContext:
    """A context of one row that carries nothing a method could read about a batch."""
    return PromptContext(batch_size=1, device=device, dtype=dtype, num_prompt_positions=method.num_prompt_positions)


_NOT_STATIC = object()


def _static(answer: object) -> object:
    """The answer if it is a finite tensor (or list of (k, v) pairs, or None), else _NOT_STATIC."""
    if answer is None:
        return None
    tensors = [t for pair in answer for t in pair] if isinstance(answer, list) else [answer]
    if all(isinstance(t, torch.Tensor) and t.shape[0] == 1 and bool(torch.isfinite(t).all()) for t in tensors):
        return answer
    return _NOT_STATIC


def _ask(fn: object, *args: object) -> object:
    """A method's answer to the no-rows probe; any failure means it reads the batch."""
    try:
        return _static(fn(*args))  # type: ignore[operator]
    except Exception:  # noqa: BLE001  (a method reading a missing field fails in its own way; all mean "dynamic")
        return _NOT_STATIC


def sub_context(ctx: PromptContext, rows: torch.Tensor) -> PromptContext:
    """The context of only ``rows``: what one adapter sees of its own rows (its task 0)."""
    def take(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[rows]

    return PromptContext(batch_size=int(rows.shape[0]), device=ctx.device, dtype=ctx.dtype,
                         task_ids=torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device),
                         task_repr=take(ctx.task_repr), text_embeds=take(ctx.text_embeds),
                         text_mask=take(ctx.text_mask), prompt_slots=take(ctx.prompt_slots),
                         num_prompt_positions=ctx.num_prompt_positions)


def rows_by_member(task_ids: torch.Tensor, members: Sequence[int]) -> list[tuple[int, torch.Tensor]]:
    """(member, its row indices) for each of ``members`` with rows in the batch."""
    present = set(torch.unique(task_ids).tolist())
    return [(m, (task_ids == m).nonzero().squeeze(-1)) for m in members if m in present]


class MethodMixture(PromptMethod):
    """A prompt method whose answer for each row comes from that row's adapter."""

    name = ""  # never registered: built from adapters, not from a config

    def __init__(self, methods: Sequence[PromptMethod], backbone: Backbone) -> None:
        nn.Module.__init__(self)
        self.info = backbone.info
        self.methods = nn.ModuleList(methods)  # registered, so .to(device) moves them
        self._methods: list[PromptMethod] = list(methods)
        for i, attr in enumerate(("num_prompt_positions", "num_prefix_positions", "num_template_tokens")):
            values = {geometry(m)[i] for m in methods}
            if len(values) > 1:
                raise ConfigError(f"adapters differ in {attr} ({sorted(values)}); mix only adapters with the same "
                                  "prompt length and template")
        self._layers = sorted({layer for m in methods for layer in m.prompt_layers})
        self._device = backbone.input_embeddings().weight.device
        self._dtype = backbone.input_embeddings().weight.dtype
        self.refresh()

    # ---- the banks: every static answer, stacked once
    @torch.no_grad()
    def refresh(self) -> None:
        """(Re)ask every method the no-rows probe and stack the static answers into banks."""
        n, p, h = len(self._methods), self.num_prompt_positions, self.info.hidden_size
        self._dynamic: dict[str, list[int]] = {"input": [], "layer": [], "template": [], "kv": []}
        probe_hidden = torch.full((1, p + 1, h), float("nan"), device=self._device, dtype=self._dtype)
        inputs: list[object] = []
        layers: dict[int, list[object]] = {layer: [] for layer in self._layers}
        templates: list[object] = []
        prefixes: list[object] = []
        for i, m in enumerate(self._methods):
            ctx = _probe_context(m, self._device, self._dtype)
            answers = {"input": _ask(m.input_prompt, ctx) if p else None,
                       "template": _ask(m.template_prompt, ctx) if m.num_template_tokens else None,
                       "kv": _ask(m.kv_prefix, ctx) if m.num_prefix_positions else None}
            per_layer = {layer: _ask(m.layer_prompt, layer, probe_hidden, ctx) if p else None for layer in self._layers}
            for site, answer in answers.items():
                if answer is _NOT_STATIC:
                    self._dynamic[site].append(i)
            if any(a is _NOT_STATIC for a in per_layer.values()):
                self._dynamic["layer"].append(i)
            inputs.append(answers["input"])
            templates.append(answers["template"])
            prefixes.append(answers["kv"])
            for layer, answer in per_layer.items():
                layers[layer].append(answer)
        zeros = torch.zeros(1, p, h, device=self._device, dtype=self._dtype)
        self._input_bank = self._bank(inputs, zeros) if p and any(
            isinstance(a, torch.Tensor) for a in inputs) else None  # (N, P, H)
        self._layer_banks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for layer, answers_ in layers.items():
            has = torch.tensor([isinstance(a, torch.Tensor) for a in answers_], device=self._device)  # (N,)
            if bool(has.any()):
                self._layer_banks[layer] = (self._bank(answers_, zeros), has)
        slots = self.num_template_tokens
        missing = [i for i in range(n) if slots and templates[i] is None] + [
            i for i in range(n) if self.num_prefix_positions and prefixes[i] is None]
        if missing:
            raise ConfigError(f"adapter {missing[0]}'s method gives no template or prefix vectors where its geometry "
                              "says it has some; serve it on its own")
        self._template_bank = self._bank(templates, None) if slots and any(
            isinstance(a, torch.Tensor) for a in templates) else None  # (N, T, H)
        self._kv_banks: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        statics = [a for a in prefixes if isinstance(a, list)]
        if statics:
            first = statics[0]
            filler = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in first]
            rows = [a if isinstance(a, list) else filler for a in prefixes]
            self._kv_banks = [(torch.cat([r[i][0] for r in rows]), torch.cat([r[i][1] for r in rows]))
                              for i in range(len(first))]  # per layer (N, h, P_kv, d)

    @staticmethod
    def _bank(answers: Sequence[object], filler: torch.Tensor | None) -> torch.Tensor:
        """Stack (1, ...) answers into (N, ...); members without one (None or dynamic) get the filler or zeros."""
        some = next(a for a in answers if isinstance(a, torch.Tensor))
        fill = filler if filler is not None else torch.zeros_like(some)
        return torch.cat([a.detach() if isinstance(a, torch.Tensor) else fill.to(some) for a in answers])

    @property
    def bank_device(self) -> torch.device:
        """Where the banks were stacked: models moved to another device need a new mixture."""
        return self._device

    # ---- geometry
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

    # ---- the sites: gather from the bank, then fill the rows of dynamic methods
    def _ids(self, ctx: PromptContext) -> torch.Tensor:
        if ctx.task_ids is None:
            raise ConfigError("mixed batches need task ids: one adapter index per row")
        return ctx.task_ids.to(self._device)

    def _gather(self, bank: torch.Tensor | None, ids: torch.Tensor, shape: tuple[int, ...],
                ctx: PromptContext) -> torch.Tensor:
        if bank is not None:
            return bank[ids]
        return torch.zeros(shape, device=ctx.device, dtype=ctx.dtype)

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        ids = self._ids(ctx)
        dynamic = rows_by_member(ids, self._dynamic["input"])
        if self._input_bank is None and not dynamic:
            return None
        out = self._gather(self._input_bank, ids, (ctx.batch_size, self.num_prompt_positions, self.info.hidden_size),
                           ctx)  # (B, P, H)
        for member, rows in dynamic:
            answer = self._methods[member].input_prompt(sub_context(ctx, rows))
            out[rows] = answer.to(out.dtype) if answer is not None else 0.0
        return out

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        ids = self._ids(ctx)
        dynamic = rows_by_member(ids, self._dynamic["layer"])
        bank = self._layer_banks.get(layer)
        if bank is None and not dynamic:
            return None
        flowing = hidden[:, : self.num_prompt_positions]  # (B, P, H): what a method without a prompt here keeps
        if bank is not None:
            out = torch.where(bank[1][ids][:, None, None], bank[0][ids].to(flowing.dtype), flowing)
        else:
            out = flowing.clone()
        for member, rows in dynamic:
            answer = self._methods[member].layer_prompt(layer, hidden[rows], sub_context(ctx, rows))
            if answer is not None:
                out[rows] = answer.to(out.dtype)
        return out

    def template_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        if not self.num_template_tokens:
            return None
        ids = self._ids(ctx)
        out = self._gather(self._template_bank, ids, (ctx.batch_size, self.num_template_tokens, self.info.hidden_size),
                           ctx)  # (B, T, H)
        for member, rows in rows_by_member(ids, self._dynamic["template"]):
            answer = self._methods[member].template_prompt(sub_context(ctx, rows))
            if answer is None:
                raise ConfigError(f"adapter {member}'s method gave no template vectors; serve it on its own")
            out[rows] = answer.to(out.dtype)
        return out

    def pixel_prompt(self, pixels: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        """Each adapter prompts its own rows' images (a visual prompt reads the pixels, so there is no bank);
        rows of adapters without a pixel prompt keep their images."""
        ids = self._ids(ctx)
        out: torch.Tensor | None = None
        for member, rows in rows_by_member(ids, range(len(self._methods))):
            answer = self._methods[member].pixel_prompt(pixels[rows], sub_context(ctx, rows))  # (b, 3, S, S)
            if answer is not None:
                out = pixels.clone() if out is None else out
                out[rows] = answer.to(out.dtype)
        return out

    def kv_prefix(self, ctx: PromptContext) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        if not self.num_prefix_positions:
            return None
        ids = self._ids(ctx)
        dynamic = rows_by_member(ids, self._dynamic["kv"])
        if self._kv_banks is not None:
            out = [(k[ids], v[ids]) for k, v in self._kv_banks]  # per layer (B, h, P_kv, d)
        else:
            member, rows = dynamic[0]
            first = self._methods[member].kv_prefix(sub_context(ctx, rows[:1]))
            assert first is not None
            out = [(k.new_zeros((ctx.batch_size, *k.shape[1:])), v.new_zeros((ctx.batch_size, *v.shape[1:])))
                   for k, v in first]
        for member, rows in dynamic:
            answer = self._methods[member].kv_prefix(sub_context(ctx, rows))
            if answer is None:
                raise ConfigError(f"adapter {member}'s method gave no key/value prefix; serve it on its own")
            for (k_out, v_out), (k, v) in zip(out, answer, strict=True):
                k_out[rows] = k.to(k_out.dtype)
                v_out[rows] = v.to(v_out.dtype)
        return out


class AdapterMixture(nn.Module):
    """Several adapters of one backbone and one prompt geometry served in one forward; ``task_ids`` pick each
    row's adapter. Each adapter encodes its own rows (its template), and each head scores only its own rows."""

    def __init__(self, models: Sequence[PromptModel]) -> None:  # noqa: F821
        super().__init__()
        if not models:
            raise ConfigError("give at least one adapter to mix")
        backbone = models[0].backbone
        if any(m.backbone is not backbone for m in models):
            raise ConfigError("mixed adapters must share one backbone object; load them with backbone=...")
        for m in models:
            check_mixable(m)
        self.backbone = backbone
        self.models = list(models)
        self.method = MethodMixture([m.method for m in models], backbone)
        self.heads = nn.ModuleList([m.head for m in models])
        self.width = max(len(m.labels) for m in models)
        self._reprs = [m for m, model in enumerate(models) if model.method.task_repr_kind is not None]

    @classmethod
    def from_pretrained(cls, directories: Sequence[str | Path], backbone: Backbone) -> AdapterMixture:
        from promptlearning.model import PromptModel

        return cls([PromptModel.from_pretrained(d, backbone=backbone) for d in directories])

    def _with_task_reprs(self, batch: Batch) -> Batch:
        """Rows of adapters whose method reads a task representation get their adapter's (its task 0)."""
        if not self._reprs or batch.task_repr is not None:
            return batch
        reprs = torch.stack([m.task_reprs[0] for m in self.models])  # (N, D)
        ids = batch.task_ids.to(reprs.device)
        return Batch(**{**batch.__dict__, "task_repr": reprs[ids]})

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits (B, C_max); a row's columns past its adapter's label count are -inf."""
        batch = self._with_task_reprs(batch)
        if isinstance(self.backbone, ImageBackbone):  # pixels in: the same hidden states and context out
            hidden, _, ctx = run_image_backbone(self.backbone, self.method, batch)  # (B, P + S, H)
        else:
            hidden, _, ctx = run_backbone(self.backbone, self.method, batch)  # (B, P + L, H)
        ids = batch.task_ids.to(hidden.device)
        out = hidden.new_full((hidden.shape[0], self.width), float("-inf"), dtype=torch.float32)  # (B, C_max)
        for member, rows in rows_by_member(ids, range(len(self.models))):
            logits = self.heads[member](hidden[rows], sub_context(ctx, rows))  # (b, C_i)
            out[rows, : logits.shape[1]] = logits.float()
        return out

    def encode(self, texts: Sequence[str | tuple[str, str]], adapters: Sequence[int]) -> list[Encoded]:
        """Each text tokenised by its adapter (its template), tagged with that adapter's index as task id."""
        if len(texts) != len(adapters):
            raise ConfigError("give one adapter index per text")
        bad = [a for a in adapters if not 0 <= a < len(self.models)]
        if bad:
            raise ConfigError(f"adapter index {bad[0]} out of range: {len(self.models)} adapters are loaded")
        items: list[Encoded] = []
        for text, a in zip(texts, adapters, strict=True):
            example = Example(text[0], 0, text[1]) if isinstance(text, tuple) else Example(text, 0)
            item = self.models[a].encode([example])[0]  # an image adapter's row carries its pixels
            items.append(Encoded(item.input_ids, item.token_type_ids, 0, a, item.slots, pixels=item.pixels))
        return items

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str | tuple[str, str]], adapters: Sequence[int],
                      batch_size: int = 32) -> list[torch.Tensor]:
        """Each text's class probabilities over its adapter's labels (what that adapter's predict_proba gives)."""
        items = self.encode(texts, adapters)
        first = self.models[0]
        self.eval()
        out: list[torch.Tensor] = []
        for batch in batches(items, batch_size, first.pad_id, first.left_pad):
            logits = self(batch.to(first.device)).cpu()  # (B, C_max)
            for row, a in enumerate(batch.task_ids.tolist()):
                out.append(logits[row, : len(self.models[a].labels)].softmax(-1))
        return out

    def predict(self, texts: Sequence[str | tuple[str, str]], adapters: Sequence[int],
                batch_size: int = 32) -> list[str]:
        """The label of each text under the adapter named by its index in ``adapters``."""
        probs = self.predict_proba(texts, adapters, batch_size)
        return [self.models[a].labels[int(p.argmax())] for p, a in zip(probs, adapters, strict=True)]


def check_mixable(model: PromptModel) -> None:  # noqa: F821
    """Refuse, with the fix, an adapter whose rows cannot share a forward with others."""
    if model.method.trains_backbone:
        raise ConfigError(f"a {type(model.method).name} adapter carries its own backbone weights and cannot share "
                          "one; serve it on its own backbone")
    if not getattr(model.head, "single_token", True):
        raise ConfigError("adapters whose verbaliser has multi-token label words cannot be mixed in one batch; "
                          "use single-token label words or serve them separately")


class Predictor(Protocol):
    """What serving asks of a loaded adapter: its labels and its probabilities for texts."""

    @property
    def labels(self) -> list[str]: ...

    def predict_proba(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 32) -> torch.Tensor: ...


class AdapterFamilies:
    """Any adapters of one backbone, grouped by prompt geometry: one forward per family present in a batch.

    Adapters that cannot share a forward (a head that scores with extra passes) run alone, through their own
    model, so every row still gets what its adapter gives it alone; so does any model that is not one
    PromptModel but answers ``predict_proba`` (a :class:`~promptlearning.ensemble.EnsembleModel`, whose
    members already share one forward).
    """

    def __init__(self, models: Mapping[str, Predictor]) -> None:
        self.models = dict(models)
        groups: dict[Geometry, list[tuple[str, PromptModel]]] = {}
        self.alone: list[str] = []
        for name, model in self.models.items():
            if not isinstance(model, PromptModel) or getattr(model.backbone.info, "has_text_tower", False):
                # a model of several prompts (an ensemble) runs its own forward; so does an adapter of a CLIP
                # backbone, whose head prompts the text tower with its own class context per forward
                self.alone.append(name)
                continue
            try:
                check_mixable(model)
            except ConfigError:
                self.alone.append(name)
                continue
            groups.setdefault(geometry(model.method), []).append((name, model))
        self.families: list[tuple[AdapterMixture, dict[str, int]]] = []
        self.family_of: dict[str, int] = {}
        for members in groups.values():
            self.families.append((AdapterMixture([m for _, m in members]),
                                  {n: i for i, (n, _) in enumerate(members)}))
            for n, _ in members:
                self.family_of[n] = len(self.families) - 1

    @torch.no_grad()
    def predict_proba(self, rows: Sequence[tuple[str, str | tuple[str, str]]],
                      batch_size: int = 32) -> list[torch.Tensor]:
        """For each (adapter name, text), its probabilities over that adapter's labels, in row order."""
        unknown = [a for a, _ in rows if a not in self.models]
        if unknown:
            raise ConfigError(f"adapter {unknown[0]!r} is not loaded; load it or choose one of {sorted(self.models)}")
        out: list[torch.Tensor | None] = [None] * len(rows)
        for f, (mixture, index) in enumerate(self.families):
            mine = [i for i, (a, _) in enumerate(rows) if self.family_of.get(a) == f]
            if mine:
                probs = mixture.predict_proba([rows[i][1] for i in mine], [index[rows[i][0]] for i in mine],
                                              batch_size)
                for i, p in zip(mine, probs, strict=True):
                    out[i] = p
        for name in self.alone:
            mine = [i for i, (a, _) in enumerate(rows) if a == name]
            if mine:
                alone = self.models[name].predict_proba([rows[i][1] for i in mine], batch_size)  # (b, C)
                for i, p in zip(mine, alone, strict=True):
                    out[i] = p
        return [p for p in out if p is not None]


from promptlearning.model import PromptModel  # noqa: E402  (type used in signatures above)
