"""One contract, run over every registered head on both tiny backbones (like the method contract).

Each head builds where it declares it can (and is refused with a one-line ConfigError where it
declares it cannot), gives scores of the shape its ``output`` declares, trains only its own and
the method's parameters, round-trips through save/load bit-exactly, and has a config that
round-trips and refuses options it does not take. The declared capabilities (needs_training,
serves_many_tasks, needs_lm_head) are checked against what the head does.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from promptlearning.backbones import Backbone
from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch, collate, encode
from promptlearning.data.examples import Example
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import ConfigError, UnknownNameError
from promptlearning.heads.base import (
    HEADS,
    Head,
    HeadConfig,
    OutputKind,
    build_head,
    get_head,
    head_kinds,
    register_head,
)
from promptlearning.model import PromptModel
from promptlearning.runs.multitask import cross_task_head

KINDS = [kind for kind in head_kinds() if "text" in get_head(kind).input_kinds]  # images: test_image_methods
BACKBONES = ["bert", "llama"]
LABELS = ["negative", "positive"]
METHOD, METHOD_OPTIONS = "prompt_tuning", {"num_tokens": 3}
# options away from the defaults, so a round trip proves they are kept (a head not listed: its defaults)
EXAMPLE_OPTIONS: dict[str, dict[str, Any]] = {
    "classification": {"pooling": "mean", "dropout": 0.0},
    "verbalizer": {"label_words": {"negative": ["bad", "awful"], "positive": ["good"]}},
    "label_description": {"pooling": "cls", "label_words": {"negative": ["bad"], "positive": ["good"]}},
}


def _backbone(request: pytest.FixtureRequest, name: str) -> Backbone:
    backbone: Backbone = request.getfixturevalue(name)
    return backbone


def _batch(backbone: Backbone, examples: list[Example]) -> Batch:
    return collate(encode(backbone.tokenizer, examples, 32), int(backbone.tokenizer.pad_token_id),
                   backbone.info.is_decoder)


def _refusal(kind: str, backbone: Backbone) -> str | None:
    """The head's own answer to "can you serve this backbone?": None, or its one-line refusal."""
    try:
        get_head(kind).check_backbone(backbone)
    except ConfigError as exc:
        return str(exc)
    return None


def _model(kind: str, backbone: Backbone, **options: Any) -> PromptModel:
    return PromptModel.build(backbone, METHOD, LABELS, method_options=METHOD_OPTIONS,
                             head=HeadConfig(kind=kind, **options))


def _unlabelled(batch: Batch) -> Batch:
    """The batch without labels: the contract computes the loss itself, with gold of the declared shape."""
    return dataclasses.replace(batch, labels=None)


def _gold(output: OutputKind, batch: Batch) -> torch.Tensor:
    """Gold labels of the shape a head's output kind trains on (the toy task has one label per row)."""
    assert batch.labels is not None
    if output is OutputKind.LABEL:
        return batch.labels
    if output is OutputKind.TOKEN_LABELS:
        return batch.labels.unsqueeze(1).expand_as(batch.input_ids).masked_fill(batch.attention_mask == 0, -100)
    return batch.input_ids.masked_fill(batch.attention_mask == 0, -100)


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("kind", KINDS)
def test_builds_exactly_where_it_says_it_can(kind: str, backbone_name: str, request: pytest.FixtureRequest) -> None:
    backbone = _backbone(request, backbone_name)
    refusal = _refusal(kind, backbone)
    if refusal is None:
        assert isinstance(_model(kind, backbone).head, get_head(kind))
    else:
        assert "\n" not in refusal and "use --head" in refusal
        with pytest.raises(ConfigError) as caught:
            _model(kind, backbone)
        assert str(caught.value) == refusal
    if get_head(kind).needs_lm_head and backbone.lm_head is None:
        assert refusal is not None, "a head that needs an LM head must refuse a backbone without one"


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_gives_the_declared_shape_and_trains_only_head_and_method(
        kind: str, backbone_name: str, request: pytest.FixtureRequest, toy: list[Example]) -> None:
    backbone = copy.deepcopy(_backbone(request, backbone_name))
    if _refusal(kind, backbone) is not None:
        return  # refused: test_builds_exactly_where_it_says_it_can checks that
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = _model(kind, backbone)
    head = model.head
    assert any(p.requires_grad for p in head.parameters()) == head.needs_training
    batch = _batch(backbone, toy[:3] + toy[-3:])
    scores = model(_unlabelled(batch)).logits
    rows, positions = batch.input_ids.shape
    assert scores.shape == head.output.shape(rows, positions, len(LABELS), backbone.info.vocab_size)
    loss = head.loss(scores, _gold(head.output, batch))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    own = {id(p) for p in [*model.method.parameters(), *head.parameters()] if p.requires_grad}
    assert {id(p) for p in model.trainable_parameters()} == own
    for name, p in model.named_parameters():
        assert (p.grad is not None) <= (id(p) in own), f"{name} got a gradient but is not the head's or method's"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.method.parameters())
    if head.needs_training:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert all(not p.requires_grad for p in backbone.parameters())
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_is_bit_exact(kind: str, backbone_name: str, request: pytest.FixtureRequest,
                                           toy: list[Example], tmp_path: Path) -> None:
    backbone = _backbone(request, backbone_name)
    if _refusal(kind, backbone) is not None:
        return
    model = _model(kind, backbone, **EXAMPLE_OPTIONS.get(kind, {}))
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)  # move away from the initialisation
    model.save_pretrained(tmp_path / "adapter")
    loaded = PromptModel.from_pretrained(tmp_path / "adapter", backbone=backbone)
    assert type(loaded.head) is type(model.head) and loaded.head.config == model.head.config
    a, b = model.trainable_state(), loaded.trainable_state()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    batch = _batch(backbone, toy[:3])
    assert torch.equal(model.eval()(batch).logits, loaded.eval()(batch).logits)


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trips_and_is_the_heads_own(kind: str) -> None:
    config = HeadConfig(kind=kind, **EXAMPLE_OPTIONS.get(kind, {}))
    assert type(config) is get_head(kind).config_class and config.kind == kind
    values = config.to_dict()
    assert json.loads(json.dumps(values)) == values  # plain JSON: adapters and bench job keys hold it
    for again in (HeadConfig.from_dict(values), HeadConfig(**values), HeadConfig.from_saved(values),
                  type(config).from_dict(values)):
        assert again == config and type(again) is type(config)
    assert HeadConfig.from_dict({"kind": kind}) == HeadConfig(kind=kind)


@pytest.mark.parametrize("kind", KINDS)
def test_options_the_head_does_not_take_are_one_line_errors(kind: str) -> None:
    for build in (lambda v: HeadConfig.from_dict(v), lambda v: HeadConfig(**v)):
        with pytest.raises(ConfigError, match=f"unknown head option.*no_such_option.*the {kind} head takes"):
            build({"kind": kind, "no_such_option": 1})
    own = set(get_head(kind).config_class.option_names())
    for other in KINDS:
        for key in set(get_head(other).config_class.option_names()) - own:
            value = getattr(HeadConfig(kind=other, **EXAMPLE_OPTIONS.get(other, {})), key)
            with pytest.raises(ConfigError) as caught:
                HeadConfig.from_dict({"kind": kind, key: value})
            message = str(caught.value)
            assert "\n" not in message and f"the {kind} head takes no {key} option" in message and other in message


def test_an_unknown_kind_lists_the_heads() -> None:
    with pytest.raises(UnknownNameError, match="unknown head 'nope'; choose one of: " + ", ".join(head_kinds())):
        HeadConfig.from_dict({"kind": "nope"})


@pytest.mark.parametrize("kind", KINDS)
def test_serving_many_tasks_is_what_the_head_declares(kind: str, llama: Backbone, bert: Backbone,
                                                      toy: list[Example]) -> None:
    backbone = llama if _refusal(kind, bert) is not None else bert
    tasks = [TaskInfo("first", LABELS), TaskInfo("second", ["a", "b", "c"])]

    def build() -> PromptModel:
        return PromptModel.build(backbone, METHOD, LABELS, method_options=METHOD_OPTIONS,
                                 head=HeadConfig(kind=kind), tasks=tasks)

    if not get_head(kind).serves_many_tasks:
        with pytest.raises(ConfigError, match="serves one task"):
            build()
        return
    model = build().eval()
    items = model.encode(toy[:2], 0) + model.encode(toy[-2:], 1)
    batch = collate(items, model.pad_id, model.left_pad)
    scores = model(_unlabelled(batch)).logits
    assert scores.shape[:2] == (4, 3)
    assert (scores[:2, 2] < scores[:2, :2].min()).all()  # a task's rows never score another task's extra label


# ---------------------------------------------------------------------- the pinned serialised form
# Bench stores are keyed by the canonical JSON of these entries and adapters hold them: the three
# original heads must keep writing exactly these keys, or finished sweeps would run again.
OLD_SHAPE = {"pooling": "auto", "dropout": 0.1, "label_words": None}


@pytest.mark.parametrize("kind", ["classification", "verbalizer", "label_description"])
def test_original_heads_serialise_as_before(kind: str) -> None:
    assert HeadConfig(kind=kind).to_dict() == {"kind": kind, **OLD_SHAPE}
    assert dataclasses.asdict(HeadConfig(kind=kind)) == {"kind": kind, **OLD_SHAPE}
    assert HeadConfig().to_dict() == {"kind": "classification", **OLD_SHAPE}


@pytest.mark.parametrize(("kind", "ignored"), [
    ("classification", {"label_words": {"negative": ["bad"], "positive": ["good"]}}),
    ("verbalizer", {"pooling": "mean", "dropout": 0.3}),
    ("label_description", {"dropout": 0.0}),
])
def test_adapters_saved_with_options_the_head_ignored_still_load(kind: str, ignored: dict[str, Any], llama: Backbone,
                                                                 toy: list[Example], tmp_path: Path) -> None:
    """Older versions accepted (and saved) every head option for every head; such adapters load unchanged."""
    model = _model(kind, llama)
    with pytest.raises(ConfigError, match=f"the {kind} head takes no"):
        HeadConfig(kind=kind, **ignored)
    model.save_pretrained(tmp_path / "adapter")
    path = tmp_path / "adapter" / "adapter_config.json"
    saved = json.loads(path.read_text())
    saved["head"].update(ignored)
    path.write_text(json.dumps(saved))
    loaded = PromptModel.from_pretrained(tmp_path / "adapter", backbone=llama)
    assert loaded.head.config == model.head.config
    batch = _batch(llama, toy[:3])
    assert torch.equal(model.eval()(batch).logits, loaded.eval()(batch).logits)


# ---------------------------------------------------------------------- callers read capabilities
def test_cross_task_runs_swap_only_a_head_with_per_task_weights() -> None:
    said: list[str] = []
    swapped = cross_task_head(HeadConfig(kind="classification", pooling="cls", dropout=0.3), said.append)
    assert swapped == HeadConfig(kind="label_description", pooling="cls") and len(said) == 1
    for kind in KINDS:
        if get_head(kind).serves_many_tasks:
            config = HeadConfig(kind=kind, **EXAMPLE_OPTIONS.get(kind, {}))
            assert cross_task_head(config, said.append) is config


# ---------------------------------------------------------------------- a new head is one class
@dataclass
class ToyTokenConfig(HeadConfig):
    kind: str = "toy_token_labels"
    scale: float = 1.0


class ToyTokenHead(Head):
    """A per-token head of the kind issue 19 asks for, written against the interface alone."""

    kind: ClassVar[str] = "toy_token_labels"
    config_class: ClassVar[type[HeadConfig]] = ToyTokenConfig
    output = OutputKind.TOKEN_LABELS

    def __init__(self, config: ToyTokenConfig, backbone: Backbone, labels: list[str]) -> None:
        super().__init__(config, backbone, labels)
        self.scale = config.scale
        self.linear = nn.Linear(backbone.info.hidden_size, len(labels))

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        return self.scale * self.linear(hidden[:, ctx.num_prompt_positions:])  # (B, L, C)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(scores.flatten(0, 1), labels.flatten(), ignore_index=-100)


def test_a_new_head_needs_no_other_change(bert: Backbone, toy: list[Example], tmp_path: Path) -> None:
    register_head(ToyTokenHead)
    try:
        config = HeadConfig.from_dict({"kind": "toy_token_labels", "scale": 2})
        assert isinstance(config, ToyTokenConfig) and config.to_dict() == {"kind": "toy_token_labels", "scale": 2.0}
        with pytest.raises(ConfigError, match="the toy_token_labels head takes no pooling option"):
            HeadConfig(kind="toy_token_labels", pooling="mean")
        model = PromptModel.build(bert, METHOD, LABELS, method_options=METHOD_OPTIONS, head=config)
        batch = _unlabelled(_batch(bert, toy[:2]))  # the toy task has row labels, not token labels
        scores = model(batch).logits
        assert scores.shape == OutputKind.TOKEN_LABELS.shape(2, batch.input_ids.shape[1], 2, bert.info.vocab_size)
        model.save_pretrained(tmp_path / "adapter")
        loaded = PromptModel.from_pretrained(tmp_path / "adapter", backbone=bert)
        assert loaded.head.config == config and torch.equal(loaded.eval()(batch).logits, model.eval()(batch).logits)
    finally:
        HEADS.pop("toy_token_labels", None)


def test_registering_checks_the_config_class() -> None:
    class NoConfig(Head):
        kind = "no_config"

    class WrongKind(Head):
        kind = "wrong_kind"
        config_class = ToyTokenConfig

    for cls in (NoConfig, WrongKind):
        with pytest.raises(TypeError):
            register_head(cls)
        assert cls.kind not in HEADS
    with pytest.raises(TypeError, match="already registered"):
        register_head(type("Again", (ToyTokenHead,), {"kind": "classification", "config_class":
                                                       get_head("classification").config_class}))


def test_building_from_another_heads_config_is_refused(bert: Backbone) -> None:
    with pytest.raises(TypeError, match="is built from a"):
        get_head("classification")(HeadConfig(kind="label_description"), bert, LABELS)
    assert isinstance(build_head(HeadConfig(), bert, 3), get_head("classification"))


@pytest.mark.parametrize("kind", KINDS)
def test_every_head_says_what_it_is_and_documents_its_options(kind: str) -> None:
    cls = get_head(kind)
    assert cls.summary and isinstance(cls.output, OutputKind)
    config = cls.config_class
    assert list(config.help()) == config.option_names()
    assert all(text.strip() for text in config.help().values()), f"{kind}: every option needs help text"
