"""Mixed batches for serving: every registered method's rows equal that adapter alone, and each row
gathers only its own prompt (no adapter runs over other adapters' rows)."""

from __future__ import annotations

import copy

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.errors import ConfigError
from promptlearning.methods import list_methods
from promptlearning.methods.base import PromptMethod
from promptlearning.mixture import AdapterFamilies, AdapterMixture
from promptlearning.model import PromptModel

OPTIONS: dict[str, dict[str, object]] = {"prompt_tuning": {"num_tokens": 3}, "p_tuning_v2": {"num_tokens": 3},
                                         "hyperprompt": {"task_repr": "learned", "num_tokens": 3}}
MIXABLE = [cls.name for cls in list_methods() if not cls.trains_backbone and "text" in cls.input_kinds]  # images: test_image_methods
TEXTS = ["great movie", "awful film", "fun and funny story", "bad", "i love this film", "so boring"]


def _model(backbone: Backbone, name: str, seed: int, labels: list[str] | None = None) -> PromptModel:
    torch.manual_seed(seed)
    model = PromptModel.build(backbone, name, labels or ["negative", "positive"], method_options=OPTIONS.get(name))
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", MIXABLE)
def test_every_method_mixed_equals_alone(name: str, any_backbone: Backbone) -> None:
    models = {"a": _model(any_backbone, name, 1), "b": _model(any_backbone, name, 2, ["x", "y", "z"]),
              "pt": _model(any_backbone, "prompt_tuning", 3), "probe": _model(any_backbone, "linear_probe", 4)}
    families = AdapterFamilies(models)
    rows = [(n, t) for i, t in enumerate(TEXTS) for n in list(models)[i % 4:] + list(models)[: i % 4]]
    mixed = families.predict_proba(rows, batch_size=8)
    for (adapter, text), got in zip(rows, mixed, strict=True):
        alone = models[adapter].predict_proba([text])[0]
        assert got.shape == alone.shape
        assert (got - alone).abs().max() < 1e-5, (adapter, text)


def _counting(monkeypatch: pytest.MonkeyPatch, cls: type[PromptMethod], site: str) -> list[int]:
    """Record the batch size of every call of ``cls.site``."""
    seen: list[int] = []
    original = getattr(cls, site)

    def wrapped(self: PromptMethod, *args: object) -> object:
        ctx = args[-1]
        seen.append(int(ctx.batch_size))  # type: ignore[attr-defined]
        return original(self, *args)

    monkeypatch.setattr(cls, site, wrapped)
    return seen


def test_static_prompts_are_gathered_not_recomputed(bert: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    models = [_model(bert, "prompt_tuning", s) for s in range(8)]
    mixture = AdapterMixture(models)
    seen = _counting(monkeypatch, type(models[0].method), "input_prompt")
    mixture.predict(TEXTS * 2, [i % 8 for i in range(12)])
    assert seen == []  # stacked once at build; a forward is one gather, whatever the number of adapters


def test_dynamic_prompts_see_only_their_own_rows(bert: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    models = [_model(bert, "generator", s) for s in range(4)]
    mixture = AdapterMixture(models)
    seen = _counting(monkeypatch, type(models[0].method), "layer_prompt")
    assignment = [0, 1, 1, 2, 2, 2]
    mixture.predict(TEXTS, assignment, batch_size=6)
    layers = len(models[0].method.prompt_layers)
    assert sorted(seen) == sorted([1, 2, 3] * layers)  # rows of adapters 0..2 once each; adapter 3 not asked


def test_families_split_by_geometry_and_refuse_unknown(bert: Backbone) -> None:
    short = _model(bert, "prompt_tuning", 1)
    long = PromptModel.build(bert, "prompt_tuning", ["n", "p"], method_options={"num_tokens": 5}).eval()
    own = copy.deepcopy(bert)  # fine-tuning trains its backbone: never the shared one
    families = AdapterFamilies({"short": short, "long": long, "ft": _model(own, "finetune", 2)})
    assert len(families.families) == 2 and families.alone == ["ft"]
    got = families.predict_proba([("long", "fun"), ("short", "bad"), ("ft", "good")])
    assert torch.allclose(got[0], long.predict_proba(["fun"])[0], atol=1e-6)
    with pytest.raises(ConfigError, match="not loaded"):
        families.predict_proba([("nope", "x")])
