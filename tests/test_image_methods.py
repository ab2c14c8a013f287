"""Prompts on images: every image method through the method contract on tiny random ViT, CLIP and CNN
backbones built in memory; identity initialisations; CLIP zero-shot against a hand computation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from promptlearning.backbones import Backbone, load_backbone, tiny_backbone
from promptlearning.data.batching import Batch, batches
from promptlearning.data.examples import Example
from promptlearning.data.images import image_uri, open_image
from promptlearning.efficientnet_lite import EfficientNetLite0
from promptlearning.errors import ConfigError, DataError
from promptlearning.heads.base import HeadConfig
from promptlearning.heads.label_mapping import greedy_one_to_one
from promptlearning.image_backbones import EfficientNetBackbone, ImageBackbone
from promptlearning.methods import list_methods
from promptlearning.model import PromptModel

LABELS = ["dark", "bright"]


@pytest.fixture(scope="module")
def vit() -> ImageBackbone:
    backbone = load_backbone("tiny-vit")
    assert isinstance(backbone, ImageBackbone)
    return backbone


@pytest.fixture(scope="module")
def clip() -> ImageBackbone:
    backbone = load_backbone("tiny-clip")
    assert isinstance(backbone, ImageBackbone)
    return backbone


@pytest.fixture(scope="module")
def cnn() -> ImageBackbone:
    """A random EfficientNet-Lite0 with a 10-class classifier on 32x32 inputs (the packaged one's code path)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return EfficientNetBackbone("tiny-effnet", EfficientNetLite0(num_classes=10), image_size=32)


@pytest.fixture(scope="module")
def images() -> list[Example]:
    """Eight small images, dark (label 0) and bright (label 1), as PNG data URIs."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        base = 40 if i % 2 == 0 else 200
        pixels = np.clip(base + rng.integers(-30, 30, size=(12, 12, 3)), 0, 255).astype(np.uint8)
        rows.append(Example(image_uri(pixels), i % 2))
    return rows


# (method, backbone fixture, head config, method options): every image method on the backbones it serves
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("vpt", "vit", {}, {"num_tokens": 3}),
    ("vpt", "vit", {"kind": "label_mapping", "mapping": "learned"}, {"num_tokens": 2, "deep": False}),
    ("vpt", "clip", {"kind": "clip"}, {"num_tokens": 2}),
    ("visual_prompt", "vit", {"kind": "label_mapping"}, {"pad": 4}),
    ("visual_prompt", "cnn", {"kind": "label_mapping"}, {"pad": 4}),
    ("visual_prompt", "clip", {"kind": "clip"}, {"pad": 4}),
    ("linear_probe", "cnn", {}, {}),
    ("linear_probe", "vit", {"kind": "label_mapping", "mapping": "learned"}, {}),
    ("finetune", "cnn", {}, {}),
    ("finetune", "vit", {}, {}),
    ("coop", "clip", {"kind": "clip"}, {}),
    ("coop", "clip", {"kind": "clip"}, {"init_words": None, "num_context": 3}),
    ("cocoop", "clip", {"kind": "clip"}, {}),
]
IDS = [f"{m}-{b}-{h.get('kind', 'classification')}" for m, b, h, _ in CASES]


def _build(backbone: Backbone, method: str, head: dict[str, Any], options: dict[str, Any]) -> PromptModel:
    return PromptModel.build(backbone, method, LABELS, method_options=options, head=HeadConfig(**head))


def _batch(model: PromptModel, rows: list[Example]) -> Batch:
    return batches(model.encode(rows), len(rows), model.pad_id)[0]


def test_every_image_method_is_covered() -> None:
    image_methods = {cls.name for cls in list_methods() if "image" in cls.input_kinds}
    assert image_methods - {"zero_shot"} == {case[0] for case in CASES}


@pytest.mark.parametrize(("method", "which", "head", "options"), CASES, ids=IDS)
def test_forward_backward_trains_only_its_own_parameters(method: str, which: str, head: dict[str, Any],
                                                         options: dict[str, Any], images: list[Example],
                                                         request: pytest.FixtureRequest) -> None:
    backbone = copy.deepcopy(request.getfixturevalue(which))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    model = _build(backbone, method, head, options)
    out = model(_batch(model, images))
    assert out.logits.shape == (8, 2)
    assert out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable
    for p in model.parameters():
        if id(p) not in trainable:
            assert p.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trainable_parameters())
    if not model.method.trains_backbone:
        assert all(not p.requires_grad for p in backbone.parameters())
        assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


@pytest.mark.parametrize(("method", "which", "head", "options"), CASES, ids=IDS)
def test_save_load_round_trip_is_bit_exact(method: str, which: str, head: dict[str, Any], options: dict[str, Any],
                                           images: list[Example], request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    shared = request.getfixturevalue(which)
    backbone = copy.deepcopy(shared)
    model = _build(backbone, method, head, options)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(tmp_path / "adapter")
    loaded = PromptModel.from_pretrained(tmp_path / "adapter",
                                         backbone=copy.deepcopy(shared) if model.method.trains_backbone else backbone)
    a, b = model.trainable_state(), loaded.trainable_state()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    model.eval()
    loaded.eval()
    batch = _batch(model, images[:3])
    assert torch.equal(model(batch).logits, loaded(batch).logits)


def test_an_adapter_refuses_another_image_backbone(vit: ImageBackbone, cnn: ImageBackbone, tmp_path: Path) -> None:
    from promptlearning.errors import AdapterError

    _build(vit, "linear_probe", {}, {}).save_pretrained(tmp_path / "a")
    with pytest.raises(AdapterError, match="was made for backbone 'tiny-vit'"):
        PromptModel.from_pretrained(tmp_path / "a", backbone=cnn)


def test_rows_are_independent_of_batch_mates(clip: ImageBackbone, images: list[Example]) -> None:
    model = _build(clip, "cocoop", {"kind": "clip"}, {}).eval()
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
        alone = model(_batch(model, images[:1])).logits
        together = model(_batch(model, images[:4])).logits[:1]
    assert torch.allclose(alone, together, atol=1e-5)


# ---------------------------------------------------------------------- identity initialisations
def _logits(model: PromptModel, rows: list[Example]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(_batch(model, rows)).logits


@pytest.mark.parametrize("which", ["vit", "cnn"])
def test_an_untrained_visual_prompt_leaves_the_model_as_it_was(which: str, images: list[Example],
                                                                request: pytest.FixtureRequest) -> None:
    backbone = request.getfixturevalue(which)
    bare = _build(backbone, "zero_shot", {"kind": "label_mapping"}, {})
    prompted = _build(backbone, "visual_prompt", {"kind": "label_mapping"}, {"pad": 4})
    assert torch.equal(_logits(bare, images), _logits(prompted, images))


def test_untrained_coop_and_cocoop_score_as_zero_shot_clip_with_their_words(clip: ImageBackbone,
                                                                            images: list[Example]) -> None:
    zero = _logits(_build(clip, "zero_shot", {"kind": "clip", "template": "a photo of a {}."}, {}), images)
    coop = _logits(_build(clip, "coop", {"kind": "clip"}, {"init_words": "a photo of a"}), images)
    cocoop = _logits(_build(clip, "cocoop", {"kind": "clip"}, {"init_words": "a photo of a"}), images)
    assert torch.allclose(zero, coop, atol=1e-5) and torch.allclose(zero, cocoop, atol=1e-5)


def test_zero_shot_clip_equals_a_hand_computation(clip: ImageBackbone, images: list[Example]) -> None:
    """Hugging Face's own CLIPModel forward on the same pixels and prompts gives the same scores."""
    model = _build(clip, "zero_shot", {"kind": "clip", "template": "a {} picture"}, {})
    ours = _logits(model, images)
    pixels = clip.normalize(_batch(model, images).pixel_values.float() / 255)  # type: ignore[union-attr]
    tokens = clip.tokenizer(["a dark picture", "a bright picture"], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = clip.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                               pixel_values=pixels).logits_per_image  # (B, C)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_deep_vpt_places_a_prompt_at_every_layer_shallow_at_the_input(vit: ImageBackbone) -> None:
    deep = _build(vit, "vpt", {}, {"num_tokens": 2})
    shallow = _build(vit, "vpt", {}, {"num_tokens": 2, "deep": False})
    assert deep.method.prompt_layers == [0, 1] and shallow.method.prompt_layers == [0]
    assert deep.num_trainable() - shallow.num_trainable() == 2 * vit.info.hidden_size


# ---------------------------------------------------------------------- label mapping
def test_greedy_mapping_is_one_to_one_largest_first() -> None:
    scores = torch.tensor([[5.0, 4.0, 0.0], [6.0, 1.0, 0.0]])
    assert greedy_one_to_one(scores).tolist() == [1, 0]  # row 1 takes column 0 (6), row 0 the best left


def test_frequency_mapping_takes_each_labels_most_predicted_class(vit: ImageBackbone, images: list[Example]) -> None:
    """Dark images are mostly predicted as source class 7 and bright ones as 3 (and 7 once): the
    mapping is 7 for dark and 3 for bright, fitted from the training batches before any training."""
    model = _build(vit, "zero_shot", {"kind": "label_mapping"}, {})
    head: Any = model.head
    calls = iter(range(100))

    def run(batch: Batch) -> tuple[torch.Tensor, Any]:
        logits = torch.zeros(len(batch), 10)
        for row, label in enumerate(batch.labels.tolist()):  # type: ignore[union-attr]
            logits[row, 7 if label == 0 or next(calls) == 0 else 3] = 5.0
        return logits, None

    head.source_logits = lambda hidden, ctx: hidden
    assert head.source_index.tolist() == [0, 1]  # until fitted: label c reads source class c
    head.fit_to_data(batches(model.encode(images), 3, 0), run)
    assert head.source_index.tolist() == [7, 3]


# ---------------------------------------------------------------------- refusals
def test_methods_and_heads_refuse_backbones_they_cannot_prompt(vit: ImageBackbone, cnn: ImageBackbone,
                                                               bert: Backbone) -> None:
    for method, backbone, head, match in [
        ("vpt", bert, {}, "method vpt prompts image backbones and tiny-bert reads texts; use --method"),
        ("prompt_tuning", vit, {}, "method prompt_tuning prompts text backbones and tiny-vit reads images"),
        ("vpt", cnn, {}, "has none \\(a CNN\\); use --method visual_prompt"),
        ("coop", vit, {"kind": "clip"}, "has no text tower"),
        ("linear_probe", vit, {"kind": "clip"}, "the clip head needs a CLIP backbone"),
        ("linear_probe", bert, {"kind": "label_mapping"}, "the label_mapping head serves image backbones"),
        ("visual_prompt", vit, {}, "pad 30 covers the whole 32x32 input"),
    ]:
        with pytest.raises(ConfigError, match=match) as caught:
            _build(backbone, method, head, {})
        assert "\n" not in str(caught.value)


def test_unreadable_or_missing_images_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("not an image")
    for ref, match in [(str(tmp_path / "bad.png"), "cannot read image"), (str(tmp_path / "none.png"), "does not exist"),
                       ("data:image/png;base64,@@@", "not valid base64"),
                       ("data:image/png;base64,bm90IGFuIGltYWdl", "an in-memory image \\(not an image format")]:
        with pytest.raises(DataError, match=match) as caught:
            open_image(ref)
        assert "\n" not in str(caught.value) and "object at 0x" not in str(caught.value)


def test_text_backbones_are_not_image_backbones() -> None:
    assert not isinstance(tiny_backbone("bert"), ImageBackbone)


# ---------------------------------------------------------------------- checkpoints from a folder, packaged data
def test_vit_and_clip_checkpoint_folders_load_as_image_backbones(vit: ImageBackbone, clip: ImageBackbone,
                                                                 tmp_path: Path) -> None:
    """What a user with a local ViT or CLIP checkpoint passes as --backbone FOLDER."""
    from transformers import ViTConfig, ViTForImageClassification

    from promptlearning.image_backbones import ClipBackbone, VitBackbone

    clip.model.save_pretrained(tmp_path / "clip")
    clip.tokenizer.save_pretrained(tmp_path / "clip")
    loaded = load_backbone(str(tmp_path / "clip"))
    assert isinstance(loaded, ClipBackbone) and loaded.info.fingerprint == clip.info.fingerprint
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, num_labels=5)
    ViTForImageClassification(config).save_pretrained(tmp_path / "vit")
    loaded_vit = load_backbone(str(tmp_path / "vit"))
    assert isinstance(loaded_vit, VitBackbone) and loaded_vit.info.source_classes == 5
    assert loaded_vit.info.num_layers == 2 and loaded_vit.info.image_size == 32


def test_the_digits_task_holds_8x8_images() -> None:
    from promptlearning.data.tasks import load_task

    digits = load_task("digits")
    assert len(digits.labels) == 10 and len(digits.pool) + len(digits.test) == 1797
    assert open_image(digits.test[0].text_a).size == (8, 8)


def test_a_cnn_can_be_fed_smaller_images_and_a_vit_cannot(cnn: ImageBackbone, vit: ImageBackbone) -> None:
    from promptlearning.errors import BackboneError
    from promptlearning.image_backbones import at_image_size

    small = at_image_size(cnn, 24)
    assert small.info.image_size == 24 and cnn.info.image_size == 32 and small.model is cnn.model
    assert small.name == small.info.name == "tiny-effnet@24" and cnn.name == "tiny-effnet"  # adapters record it
    assert at_image_size(small, 32).name == "tiny-effnet@32" and at_image_size(cnn, 32) is cnn
    with pytest.raises(BackboneError, match="position embeddings fix its input"):
        at_image_size(vit, 24)


def test_an_interrupted_image_run_resumes_exactly(vit: ImageBackbone, images: list[Example], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlearning.training import TrainConfig
    from promptlearning.training.checkpoint import load_checkpoint
    from promptlearning.training.trainer import Trainer

    from .resume_helper import Cut, assert_same_tensors, run_interrupted_then_resumed

    def run(directory: Path, resume: bool) -> dict[str, torch.Tensor]:
        model = _build(vit, "visual_prompt", {"kind": "label_mapping", "mapping": "learned"}, {"pad": 4})
        cfg = TrainConfig(max_steps=8, eval_every=4, checkpoint_every=4, quiet=True, batch_size=4,
                          train_past_perfect_dev=True)
        Trainer(model, cfg, model.encode(images), model.encode(images[:4]), directory).fit(resume=resume)
        return load_checkpoint(directory / "checkpoint")[0]

    result = run_interrupted_then_resumed(monkeypatch, run, tmp_path, Cut.at_step(Trainer, 6))
    assert_same_tensors(result.whole, result.resumed, "checkpoint")
    assert result.calls["resumed"] == 4  # steps 4..7 only


def test_sized_names_are_packaged_names_everywhere_a_name_is_checked(tmp_path: Path) -> None:
    """``NAME@SIZE`` passes the checks that a packaged name passes (adapter configs, bench suites); a size
    that is not a number, or a base that is not packaged, does not."""
    from promptlearning.backbones import packaged_base
    from promptlearning.bench.jobs import check_backbone
    from promptlearning.errors import AdapterError, UnknownNameError
    from promptlearning.model import backbone_named_by

    assert packaged_base("efficientnet-lite0@112") == packaged_base("efficientnet@112") == "efficientnet-lite0"
    assert packaged_base("efficientnet-lite0@big") is None and packaged_base("nothing@32") is None
    suite = tmp_path / "suite.yaml"
    assert check_backbone("efficientnet-lite0@112", suite) == "efficientnet-lite0@112"
    with pytest.raises(UnknownNameError, match="unknown backbone"):
        check_backbone("nothing@32", suite)
    assert backbone_named_by({"backbone": {"name": "efficientnet-lite0@112"}}, tmp_path) == "efficientnet-lite0@112"
    with pytest.raises(AdapterError, match="not a packaged name"):
        backbone_named_by({"backbone": {"name": "../x@32"}}, tmp_path)
