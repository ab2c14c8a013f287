"""Choosing a head: :class:`HeadConfig` (a kind and that head's options) and the registry of heads.

Users write one mapping, ``head: {kind: verbalizer, label_words: {...}}`` in YAML or JSON, or
``HeadConfig(kind="verbalizer", label_words=...)`` in Python. ``HeadConfig`` reads the kind and
returns an instance of that head's own config class, a subclass declared in the head's module
(as ``pathlib.Path(...)`` returns a ``PosixPath``). So each head lists, documents and checks only
its own options, an option meant for another head is refused in one line that names the heads
taking it, and a new head brings its options in its own file.

The registry maps a kind to its :class:`~promptlearning.heads.base.Head` class; every module of
this package is imported on first use, so registering is the ``@register_head`` line alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from promptlearning.configs import Options, build, option
from promptlearning.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from promptlearning.heads.base import Head

DEFAULT_KIND = "classification"

HEADS: dict[str, type[Head]] = {}


def ensure_heads_registered() -> None:
    """Import every module of the heads package so their ``@register_head`` decorators run."""
    from promptlearning.registry import import_submodules

    import_submodules("promptlearning.heads", skip=frozenset({"base", "config", "pooling"}))


def head_kinds() -> list[str]:
    """Every registered head kind, sorted (for CLI choices and messages)."""
    ensure_heads_registered()
    return sorted(HEADS)


def get_head(kind: str) -> type[Head]:
    """The head class registered under ``kind``; an unknown kind is a one-line error listing the known ones."""
    ensure_heads_registered()
    if kind not in HEADS:
        raise UnknownNameError(f"unknown head {kind!r}; choose one of: {', '.join(sorted(HEADS))}")
    return HEADS[kind]


def _kind_of(config_class: type[HeadConfig]) -> str:
    """The head kind a config class configures: the default of its ``kind`` field."""
    return str(config_class.__dataclass_fields__["kind"].default)


def register_head(cls: type[Head]) -> type[Head]:
    """Class decorator: make a head available by its ``kind`` (API, CLI, adapters, suites)."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} needs a non-empty `kind`")
    config = cls.config_class
    if not (isinstance(config, type) and issubclass(config, HeadConfig)) or config is HeadConfig:
        raise TypeError(f"{cls.__name__} needs its own `config_class`, a dataclass subclass of HeadConfig")
    if _kind_of(config) != cls.kind:
        raise TypeError(f"{config.__name__}.kind defaults to {_kind_of(config)!r}; make it {cls.kind!r}")
    if cls.kind in HEADS and HEADS[cls.kind] is not cls:
        raise TypeError(f"head kind {cls.kind!r} is already registered by {HEADS[cls.kind].__name__}")
    HEADS[cls.kind] = cls
    return cls


def legacy_key(value: Any) -> Any:
    """A field a head's configs have always been written with although the head never reads it.

    Before each head had a config of its own, one class with pooling, dropout and label_words
    served every head, so every saved head entry carries all three. Bench stores are keyed by the
    canonical JSON of those entries and adapters hold them, so the three original heads keep
    writing the keys they do not read, at these fixed values: a stored job keeps its key and a
    saved adapter its config. Another value is refused (the head would silently ignore it), except
    when an adapter is read (:meth:`HeadConfig.from_saved`). A new head has no legacy keys.
    """
    return dataclasses.field(default=value, metadata={"legacy": True,
                                                      "help": "not read by this head (kept so saved configs keep their keys)"})


@dataclass
class HeadConfig(Options):
    """Which head, and that head's options. ``HeadConfig(kind=..., **options)`` builds the head's own config.

    Subclasses (one per head, in the head's module) redefine ``kind`` with their head's kind as the
    default, add their options with :func:`~promptlearning.configs.option` (help text feeds the
    CLI) and check them in :meth:`check`, calling ``super().check()``.
    """

    kind: str = option(DEFAULT_KIND, "which head scores the backbone's outputs (see promptlearning.heads)")

    where: ClassVar[str] = "head option(s)"

    if TYPE_CHECKING:  # what type checkers should accept: the kind and any head's options
        def __init__(self, kind: str = DEFAULT_KIND, **options: Any) -> None: ...

    def __new__(cls, *args: Any, **kwargs: Any) -> HeadConfig:
        if cls is HeadConfig:  # the selection: dispatch to the chosen head's own config class
            kind = kwargs.get("kind", args[0] if args else DEFAULT_KIND)
            cls = _config_class(kind)
            cls.check_keys(kwargs)
        return object.__new__(cls)

    # ------------------------------------------------------------------ what the head takes
    @classmethod
    def option_names(cls) -> list[str]:
        """The options this head reads (besides ``kind``), in field order."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "kind" and not f.metadata.get("legacy")]

    @classmethod
    def help(cls) -> dict[str, str]:
        """Help text of each option this head reads (its legacy keys left out: they are not options)."""
        return {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(cls) if f.name in cls.option_names()}

    @classmethod
    def legacy_names(cls) -> list[str]:
        """Keys this head writes but does not read (see :func:`legacy_key`)."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("legacy")]

    @classmethod
    def check_keys(cls, keys: Iterable[str]) -> None:
        """Refuse keys this head does not take: another head's option by naming the heads taking it,
        anything else as unknown, listing this head's options."""
        kind = _kind_of(cls)
        own = {"kind", *cls.option_names(), *cls.legacy_names()}
        foreign = sorted(set(keys) - own)
        for key in foreign:
            takers = _heads_taking(key)
            if takers:
                raise ConfigError(_not_taken(kind, key, takers))
        if foreign:
            raise ConfigError(f"unknown {cls.where} {', '.join(foreign)}; the {kind} head takes: "
                              f"{', '.join(['kind', *cls.option_names()])}")

    def check(self) -> None:
        registered = get_head(self.kind).config_class
        if registered is not type(self):
            raise ConfigError(f"{type(self).__name__} does not configure the {self.kind} head ({registered.__name__} "
                              f"does); build HeadConfig(kind={self.kind!r}, ...) instead")
        for f in dataclasses.fields(self):
            if f.metadata.get("legacy") and getattr(self, f.name) != f.default:
                raise ConfigError(_not_taken(self.kind, f.name, _heads_taking(f.name)))

    # ------------------------------------------------------------------ reading and converting
    @classmethod
    def from_dict(cls, values: Any) -> HeadConfig:
        """The config a mapping describes (``kind`` picks the head; missing: classification), checked strictly."""
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{cls.where} must be a mapping of name: value, e.g. {{kind: verbalizer}} "
                              f"(got {type(values).__name__})")
        target = _config_class(values.get("kind", DEFAULT_KIND)) if cls is HeadConfig else cls
        target.check_keys(values)
        return build(target, values, cls.where)

    @classmethod
    def from_saved(cls, values: Any) -> HeadConfig:
        """Read the head entry of a saved adapter: like :meth:`from_dict`, except that a key the head
        never read (written by versions where one config served every head, with whatever value the
        user gave) is dropped, so every adapter saved before loads as it was trained."""
        if not isinstance(values, dict):
            return cls.from_dict(values)
        target = _config_class(values.get("kind", DEFAULT_KIND)) if cls is HeadConfig else cls
        legacy = set(target.legacy_names())
        return target.from_dict({k: v for k, v in values.items() if k not in legacy})

    def with_kind(self, kind: str) -> HeadConfig:
        """The same choice moved to head ``kind``: the options that head takes carry over, the rest
        are its defaults (the cross-task runs turn the classification default into the
        label-description head this way)."""
        target = _config_class(kind)
        carried = {k: v for k, v in self.to_dict().items() if k in target.option_names()}
        return HeadConfig(kind=kind, **carried)

    def head_class(self) -> type[Head]:
        """The registered head this config builds; callers read its capabilities, never its kind."""
        return get_head(self.kind)

    def words_per_label(self, labels: Sequence[str]) -> dict[str, list[str]]:
        """The words standing for each label: the head's label words where it takes them, else each
        label's name (what prompt search checks the tokenizer can score)."""
        return {label: [label] for label in labels}


@dataclass
class LabelWordsConfig(HeadConfig):
    """Options of the heads that read words (or phrases) standing for each label."""

    label_words: dict[str, list[str]] | None = option(
        None, "words or phrases per label, e.g. {negative: [bad], positive: [good]} (default: the label names)")

    def words_per_label(self, labels: Sequence[str]) -> dict[str, list[str]]:
        return dict(self.label_words) if self.label_words else super().words_per_label(labels)


def _config_class(kind: Any) -> type[HeadConfig]:
    if not isinstance(kind, str):
        raise ConfigError(f"head kind must be a text (got {kind!r}); choose one of: {', '.join(head_kinds())}")
    return get_head(kind).config_class


def _heads_taking(key: str) -> list[str]:
    return [kind for kind in head_kinds() if key in HEADS[kind].config_class.option_names()]


def _not_taken(kind: str, key: str, takers: list[str]) -> str:
    if not takers:
        return f"the {kind} head takes no {key} option and no head does; remove it"
    return (f"the {kind} head takes no {key} option (heads that take it: {', '.join(takers)}); "
            "remove it or choose one of those heads")
