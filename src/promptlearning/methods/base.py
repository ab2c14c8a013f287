"""The one extension point: a prompt method is a config dataclass plus a module.

A method answers, per batch, only *what* prompt goes *where*: the input-layer prompt, the
prompt hidden states to place before layer ``l`` (given that layer's incoming hidden
states), and which of its parameters are architecture parameters. It never touches the
backbone's modules; :mod:`promptlearning.injection` does that. A new method is a subclass
registered with :func:`register_method`; nothing else in the library changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from promptlearning.backbones import Backbone, BackboneInfo
from promptlearning.configs import Options, option  # noqa: F401  (option: re-exported for methods)
from promptlearning.context import PromptContext  # noqa: F401  (re-exported: methods import it from here)
from promptlearning.errors import ConfigError, UnknownNameError
from promptlearning.methods.search_space import Dimension


@dataclass
class MethodConfig(Options):
    """Hyper-parameters of a method; serialises to JSON and validates itself.

    Subclasses add fields with ``metadata={"help": ...}``; the help text feeds the CLI.
    """

    def check_backbone(self, info: BackboneInfo) -> None:
        """Checks that need the backbone's shape (layer indices, prompt length)."""


def check_layers(layers: list[int] | None, info: BackboneInfo, what: str = "layers") -> list[int]:
    """Resolve a layer list (None = every layer) and reject indices the backbone lacks."""
    if layers is None:
        return list(range(info.num_layers))
    if not layers:
        raise ConfigError(f"{what} is empty; give at least one layer index in 0..{info.num_layers - 1} or omit it")
    bad = [i for i in layers if not 0 <= i < info.num_layers]
    if bad:
        raise ConfigError(
            f"{what} {bad} out of range: the backbone {info.name} has layers 0..{info.num_layers - 1}"
        )
    return sorted(set(layers))


def check_prompt_length(num_tokens: int, info: BackboneInfo, what: str = "prompt") -> None:
    """A prompt must leave room for the input within the backbone's positions."""
    if num_tokens >= info.max_positions:
        raise ConfigError(f"num_tokens {num_tokens} exceeds what {info.name} allows ({info.max_positions} positions); "
                          f"use a shorter {what}")


class PromptMethod(nn.Module):
    """Base of every prompt method. Subclasses override the sites they have something to say at."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    summary: ClassVar[str] = ""
    trains_backbone: ClassVar[bool] = False
    # its prompts are computed from the input (instance-aware): appending a token can change them, so
    # generation re-runs the whole sequence each step instead of continuing from cached keys and values
    reads_input: ClassVar[bool] = False
    needs_training: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-2
    #: the kinds of backbone input this method can prompt: "text" (token embeddings), "image" (pixels, patches)
    input_kinds: ClassVar[frozenset[str]] = frozenset({"text"})
    #: prompts a CLIP text tower (CoOp, CoCoOp): not offered for an image backbone without one
    needs_text_tower: ClassVar[bool] = False
    #: what `promptlearning tune` varies besides train.lr (methods.search_space: option name -> dimension)
    search_space: ClassVar[dict[str, Dimension]] = {}

    def __init__(self, config: MethodConfig, backbone: Backbone) -> None:
        super().__init__()
        check_input_kind(type(self), backbone.info)
        config.check_backbone(backbone.info)
        self.config = config
        self.info = backbone.info

    # ---- how many prompt positions the injector must make room for
    @property
    def num_prompt_positions(self) -> int:
        return 0

    @property
    def prompt_layers(self) -> list[int]:
        """Layers whose incoming prompt positions this method may replace."""
        return []

    @property
    def num_prefix_positions(self) -> int:
        """Length of the key/value prefix this method hands to every layer's attention (0: none)."""
        return 0

    # ---- the sites
    def input_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        """Prompt vectors at the input layer, (B, P, H), or None (zeros then flow up)."""
        return None

    def layer_prompt(self, layer: int, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        """Replacement for the P prompt positions entering ``layer``, (B, P, H), or None.

        ``hidden`` is that layer's whole incoming hidden state (B, P + L, H): its first P
        positions are the prompt flowing up from below, the rest the input.
        """
        return None

    @property
    def num_template_tokens(self) -> int:
        """How many template pseudo-token slots ([P] in a template) this method fills (0: none)."""
        return 0

    @property
    def default_template(self) -> str | None:
        """The template to use when the user gives none (methods that fill [P] slots need one)."""
        return None

    def template_prompt(self, ctx: PromptContext) -> torch.Tensor | None:
        """Vectors for the template's pseudo-token slots, (B, T, H), in slot order."""
        return None

    # ---- image sites (promptlearning.image_injection asks these)
    def pixel_prompt(self, pixels: torch.Tensor, ctx: PromptContext) -> torch.Tensor | None:
        """The prompted images (B, 3, S, S), given the images in [0, 1] before normalisation, or None."""
        return None

    def class_context(self, ctx: PromptContext) -> torch.Tensor | None:
        """Context vectors (B or 1, M, H_text) put before each class name in a CLIP text tower's prompts
        (CoOp; CoCoOp reads ``ctx.image_features``), or None: the head's hand-written template."""
        return None

    def kv_prefix(self, ctx: PromptContext) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Per layer, the (key, value) prefix, each (B, kv_heads, P_kv, head_dim), or None."""
        return None

    # ---- several tasks (multi-task prompts, hypernetworks)
    @property
    def task_repr_kind(self) -> str | None:
        """Which task representation the batch must carry ("description", "support"), or None."""
        return None

    def add_task(self, name: str) -> None:
        """Grow per-task parameters for one more task (called in task order); most methods have none."""

    def regularization(self) -> torch.Tensor | None:
        """An extra training loss the method asks for (e.g. a pull toward a shared prompt), or None."""
        return None

    def architecture_parameters(self) -> list[nn.Parameter]:
        """Parameters that choose the architecture (SPT gates), trained on validation data."""
        return []

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.architecture_parameters()}
        return [p for p in self.parameters() if id(p) not in arch and p.requires_grad]

    def describe(self) -> str:
        return json.dumps(self.config.to_dict())


def input_kind(info: BackboneInfo) -> str:
    """What a backbone reads: "image" for image backbones (their info says so), else "text"."""
    return str(getattr(info, "modality", "text"))


def check_input_kind(cls: type[PromptMethod], info: BackboneInfo) -> None:
    """Refuse, in one line naming the methods that fit, a method built on a backbone whose input it cannot prompt."""
    kind = input_kind(info)
    if kind in cls.input_kinds:
        return
    from promptlearning.methods import _ensure_registered

    _ensure_registered()
    tower = bool(getattr(info, "has_text_tower", False))
    fitting = sorted(c.name for c in METHODS.values() if kind in c.input_kinds and (tower or not c.needs_text_tower))
    raise ConfigError(f"method {cls.name} prompts {'/'.join(sorted(cls.input_kinds))} backbones and {info.name} reads "
                      f"{kind}s; use --method {', '.join(fitting) or 'linear_probe'}")


METHODS: dict[str, type[PromptMethod]] = {}
ENTRY_POINT_GROUP = "promptlearning.methods"  # where installed packages declare methods of their own


def register_method(cls: type[PromptMethod]) -> type[PromptMethod]:
    """Class decorator: make a method available by its ``name`` everywhere (API, CLI, adapters)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty `name`")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise TypeError(f"method name {cls.name!r} is already registered by {METHODS[cls.name].__name__}")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[PromptMethod]:
    from promptlearning.methods import _ensure_registered

    _ensure_registered()
    key = name.replace("-", "_")
    if key not in METHODS:
        from promptlearning.registry import load_entry_points

        load_entry_points(ENTRY_POINT_GROUP, again=True)  # a plugin installed since the first look
    if key not in METHODS:
        import difflib

        close = difflib.get_close_matches(key.lower(), list(METHODS), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UnknownNameError(
            f"unknown method {name!r}{hint}; choose one of: {', '.join(sorted(METHODS))} (see `promptlearning methods`); "
            f"a method of your own: import its module first or declare it under the entry-point group "
            f"{ENTRY_POINT_GROUP}"
        )
    return METHODS[key]


def make_config(method: str, values: dict[str, Any] | None = None) -> MethodConfig:
    return get_method(method).config_class.from_dict(dict(values or {}))


def build_method(method: str | MethodConfig, backbone: Backbone, values: dict[str, Any] | None = None) -> PromptMethod:
    """Build a method from its name (and option values) or from a config instance."""
    if isinstance(method, MethodConfig):
        cls = next((c for c in METHODS.values() if isinstance(method, c.config_class)), None)
        if cls is None:
            raise ConfigError(f"no registered method uses config {type(method).__name__}")
        return cls(method, backbone)
    cls = get_method(method)
    return cls(cls.config_class.from_dict(dict(values or {})), backbone)


def method_name_of(module: PromptMethod) -> str:
    return type(module).name
