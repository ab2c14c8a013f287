"""Inspect prompts: the nearest vocabulary tokens of every prompt vector a method produces.

A learned prompt (prompt tuning, P-tuning's pseudo tokens) is one fixed set of vectors; an
instance-aware method (a generator, SPT, a hypernetwork) writes a different prompt for every
input, so it is inspected on given texts. Either way the vectors are captured by running the
model once through a *recording* method: a thin wrapper that answers the injector exactly as
the wrapped method does and keeps a copy of every answer. Nothing in the injector changes.

Which answers are input-dependent is found out, not assumed: the recorder runs two different
probe inputs in one batch; a site whose rows differ depends on the input.

Spaces, and how far "nearest token" means anything there:

* input and template prompts live in the input-embedding space: exact;
* prompts placed before layer ``l`` live in that layer's hidden-state space; their cosine
  neighbours among the input embeddings are an approximation (reported as such);
* key/value prefixes live in per-head attention space, not in token space: reported by
  shape and norm only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from promptlearning.backbones import Backbone
from promptlearning.data.batching import collate
from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.injection import run_backbone
from promptlearning.methods.base import PromptContext, PromptMethod
from promptlearning.model import PromptModel

PROBES = ("the movie was great", "a phone whose battery broke after one day")
EXACT = "input embeddings"
APPROXIMATE = "hidden states (nearest tokens are an approximation)"
NOT_TOKENS = "attention keys/values (not in token space)"


class RecordingMethod(PromptMethod):
    """Answers every site as ``inner`` does and records the answers (detached, float32)."""

    def __init__(self, inner: PromptMethod, backbone: Backbone) -> None:
        super().__init__(inner.config, backbone)
        self.inner = inner
        self.records: dict[str, torch.Tensor] = {}

    @property
    def num_prompt_positions(self) -> int:
        return self.inner.num_prompt_positions

    @property
    def prompt_layers(self) -> list[int]:
        return self.inner.prompt_layers

    @property
    def num_prefix_positions(self) -> int:
        return self.inner.num_prefix_positions

    @property
    def num_template_tokens(self) -> int:
        return self.inner.num_template_tokens

    def _keep(self, site: str, value: torch.Tensor | None) -> torch.Tensor | None:
        if value is not None:
            self.records[site] = value.detach().float().cpu()
        return value

    def input_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        return self._keep("input", self.inner.input_prompt(ctx))

    def template_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        return self._keep("template", self.inner.template_prompt(ctx))

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        return self._keep(f"layer {layer}", self.inner.layer_prompt(layer, hidden, ctx))

    def kv_prefix(self, ctx: PromptContext) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        prefix = self.inner.kv_prefix(ctx)
        if prefix is not None:
            for i, (k, v) in enumerate(prefix):
                self.records[f"prefix {i}"] = torch.stack([k.detach().float().cpu(), v.detach().float().cpu()], 1)
        return prefix


@torch.no_grad()
def capture_prompts(model: PromptModel, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Run ``texts`` through the model once; every prompt the method placed, by site.

    Input, template and layer sites map to (B, P, H); key/value prefix sites to (B, 2, heads, P, d).
    """
    if not texts:
        raise ConfigError("no texts to inspect; pass --text \"...\" or --file FILE")
    was_training = model.training
    model.eval()
    recorder = RecordingMethod(model.method, model.backbone)
    batch = collate(model.encode([Example(t, 0) for t in texts]), model.pad_id, model.left_pad).to(model.device)
    try:
        run_backbone(model.backbone, recorder, batch)
    finally:
        model.train(was_training)
    return recorder.records


def nearest_tokens(vectors: torch.Tensor, embeddings: torch.Tensor, tokenizer: Any,
                   k: int = 5) -> list[list[tuple[str, float]]]:
    """For each of (P, H) vectors, the ``k`` vocabulary tokens of (V, H) ``embeddings`` with the
    highest cosine similarity, best first, as (token, similarity)."""
    if k < 1:
        raise ConfigError(f"--top must be >= 1 (got {k})")
    sims = F.normalize(vectors.float(), dim=-1) @ F.normalize(embeddings.float(), dim=-1).T  # (P, V)
    values, ids = sims.topk(min(k, sims.shape[1]), dim=-1)  # (P, k)
    tokens = tokenizer.convert_ids_to_tokens(ids.flatten().tolist())
    width = ids.shape[1]
    return [[(str(tokens[r * width + c]), float(values[r, c])) for c in range(width)] for r in range(ids.shape[0])]


@dataclass
class SiteReport:
    """The prompt at one site, for one input (or for all inputs when it does not depend on them)."""

    site: str  # "input", "template", "layer 3", "prefix 0"
    input: str | None  # the text it was made for; None for a learned (input-independent) prompt
    space: str
    neighbours: list[list[tuple[str, float]]] = field(default_factory=list)  # per position
    norms: list[float] = field(default_factory=list)  # per position

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "input": self.input, "space": self.space,
                "positions": [{"position": i, "norm": round(n, 4),
                               "nearest": [{"token": t, "cosine": round(s, 4)} for t, s in near]}
                              for i, (n, near) in enumerate(zip(self.norms, self.neighbours or
                                                                [[] for _ in self.norms], strict=True))]}


def _space(site: str) -> str:
    if site.startswith("prefix"):
        return NOT_TOKENS
    return EXACT if site in ("input", "template") else APPROXIMATE


def _site_order(site: str) -> tuple[int, int]:
    kind, _, index = site.partition(" ")
    return ({"template": 0, "input": 1, "layer": 2, "prefix": 3}.get(kind, 4), int(index or 0))


def inspect_prompts(model: PromptModel, texts: Sequence[str] = (), k: int = 5) -> list[SiteReport]:
    """Nearest vocabulary tokens of every prompt vector: learned ones once, input-dependent ones per text.

    Raises ConfigError when the method writes input-dependent prompts and no text is given,
    or when it has no prompt vectors at all (a linear probe, fine-tuning).
    """
    if k < 1:
        raise ConfigError(f"--top must be >= 1 (got {k})")
    probed = capture_prompts(model, list(PROBES))
    if not probed:
        raise ConfigError(f"method {type(model.method).name} places no prompt vectors; nothing to inspect "
                          "(inspect a prompt_tuning, prefix_tuning, p_tuning, p_tuning_v2, generator or spt adapter)")
    dependent = {site for site, t in probed.items() if not torch.equal(t[0], t[1])}
    if dependent and not texts:
        raise ConfigError(f"method {type(model.method).name} writes a different prompt for every input "
                          f"({', '.join(sorted(dependent, key=_site_order))}); pass --text \"...\" or --file FILE")
    given = capture_prompts(model, list(texts)) if texts and dependent else {}
    embeddings = model.backbone.input_embeddings().weight.detach()  # (V, H)
    tokenizer = model.backbone.tokenizer
    reports = []
    for site in sorted(probed, key=_site_order):
        rows = [(None, probed[site][0])] if site not in dependent else \
            [(text, given[site][i]) for i, text in enumerate(texts)]
        for text, tensor in rows:
            space = _space(site)
            if space == NOT_TOKENS:  # (2, heads, P, d): one norm per prefix position, keys and values together
                norms = tensor.permute(2, 0, 1, 3).flatten(1).norm(dim=-1).tolist()
                reports.append(SiteReport(site, text, space, [], norms))
                continue
            reports.append(SiteReport(site, text, space, nearest_tokens(tensor, embeddings, tokenizer, k),
                                      tensor.norm(dim=-1).tolist()))
    return reports


def format_reports(reports: Sequence[SiteReport]) -> str:
    """A readable table: one line per prompt position, grouped by site and input."""
    lines: list[str] = []
    prefix_sites = [r for r in reports if r.space == NOT_TOKENS]
    for report in reports:
        if report.space == NOT_TOKENS:
            continue
        where = "learned (same for every input)" if report.input is None else f"for input {report.input!r}"
        lines.append(f"{report.site} prompt, {where}; space: {report.space}")
        for i, (norm, near) in enumerate(zip(report.norms, report.neighbours, strict=True)):
            tokens = "  ".join(f"{t} {s:.3f}" for t, s in near)
            lines.append(f"  {i:3d}  |v|={norm:7.3f}  {tokens}")
    if prefix_sites:
        lines.append(f"key/value prefixes at {len({r.site for r in prefix_sites})} layer(s): {NOT_TOKENS}; "
                     f"{len(prefix_sites[0].norms)} positions per layer, mean norm "
                     f"{sum(sum(r.norms) for r in prefix_sites) / sum(len(r.norms) for r in prefix_sites):.3f}")
    return "\n".join(lines)
