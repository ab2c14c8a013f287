"""Strict construction of config dataclasses from YAML, JSON or ``--option`` values.

Unknown keys and wrongly typed values are refused with one line naming the option, so a
typo in a config file never turns into a silent default or a traceback deep in a model.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, ClassVar, TypeVar

from promptlearning.errors import ConfigError

T = TypeVar("T")


def option(default: Any, help: str) -> Any:
    """A config field with help text (mutable defaults handled); the help text feeds the CLI."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


_WORDS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a text",
                          type(None): "null"}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of dataclass ``cls``, whichever way its module wrote them.

    With ``from __future__ import annotations`` a field's ``type`` is the text ``"int | None"``,
    without it the object ``int | None``; both resolve to the same object here, so a user's
    config class behaves the same in either style. A name that cannot be resolved (imported only
    under ``TYPE_CHECKING``, say) stays its text and is then matched by class name, as before.
    """
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # one unresolvable field: resolve the others one by one
        hints = {}
        for f in dataclasses.fields(cls):
            # a one-field stand-in in the same module lets get_type_hints resolve this field alone
            single = type("_Field", (), {"__annotations__": {f.name: f.type}, "__module__": cls.__module__})
            try:
                hints[f.name] = typing.get_type_hints(single)[f.name]
            except (NameError, TypeError):
                hints[f.name] = f.type
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)}


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | Y``, ``Optional[X]``, ``Union[X, Y]``), or the annotation alone."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _matches(value: Any, annotation: Any) -> bool:
    """Whether a value read from YAML, JSON or ``--option`` fits ``annotation`` (strictly: 1 is no bool)."""
    if annotation in (Any, object):
        return True
    if isinstance(annotation, str):  # unresolvable text: matched by class name (its own or a base's)
        parts = [part.strip() for part in annotation.split("|")]
        return "None" in parts if value is None else any(c.__name__ in parts for c in type(value).__mro__)
    alternatives = _alternatives(annotation)
    if len(alternatives) > 1:
        return any(_matches(value, a) for a in alternatives)
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is list or annotation is list:
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return False
        return not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if origin is tuple or annotation is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True)))
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return isinstance(value, origin) if isinstance(origin, type) else False


def _describe(annotation: Any) -> str:
    """How an error names a type: the words users know for scalars, the annotation's text otherwise."""
    alternatives = _alternatives(annotation)
    if len(alternatives) > 1:
        return " or ".join(_describe(a) for a in alternatives)
    if isinstance(annotation, str):
        return " or ".join(_WORDS.get({"int": int, "float": float, "bool": bool, "str": str, "None": type(None)}.get(
            p.strip()), p.strip()) for p in annotation.split("|"))
    if annotation is None or annotation in _WORDS:
        return _WORDS[type(None) if annotation is None else annotation]
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _accepts_float_not_int(annotation: Any) -> bool:
    alternatives = _alternatives(annotation)
    return float in alternatives and int not in alternatives


def build(cls: type[T], values: Any, where: str = "options") -> T:
    """Instantiate dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping of name: value (got {type(values).__name__})")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {where} {', '.join(unknown)}; valid: {', '.join(sorted(fields)) or 'none'}")
    kinds = field_types(cls)
    for name, value in values.items():
        if not _matches(value, kinds[name]):
            raise ConfigError(f"{where.rstrip('s')} {name} must be {_describe(kinds[name])} (got {value!r})")
        if isinstance(value, float) and not math.isfinite(value):  # YAML's .nan and .inf, --option x=.inf
            raise ConfigError(f"{where.rstrip('s')} {name} must be a finite number (got {value!r})")
        check_by_name(name, value)
    converted = {k: float(v) if _accepts_float_not_int(kinds[k]) and isinstance(v, int) else v
                 for k, v in values.items()}
    return cls(**converted)


MAX_SEED = 2**32 - 1  # NumPy's limit; torch's is higher
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_by_name(name: str, value: Any) -> None:
    """Checks every config class gets for fields of these names, whoever wrote the class: a seed
    (``seed``, ``*_seed``) is an integer in [0, 2**32), a ``device`` is auto, cpu, mps, cuda or cuda:N,
    a ``max_length`` holds an input (see :func:`check_max_length`)."""
    if value is None or isinstance(value, bool):
        return
    named = f"{name} (--{name.replace('_', '-')})"
    if (name == "seed" or name.endswith("_seed")) and isinstance(value, int) and not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{named} must be a whole number from 0 to {MAX_SEED} (got {value})")
    if name == "device" and isinstance(value, str) and not DEVICE.match(value):
        raise ConfigError(f"{named} must be auto, cpu, cuda, cuda:N or mps (got {value!r})")
    if name == "max_length":
        check_max_length(value, named)


MIN_MAX_LENGTH = 8
MAX_MAX_LENGTH = 1 << 20  # far above any model's positions; beyond it the tokenizers overflow
"""The shortest input a run accepts, in tokens: below it the special tokens and a template leave no room for
the text itself (``--max-length 5`` trained on the first three words of every input)."""


def check_max_length(value: Any, flag: str = "--max-length") -> None:
    """Refuse a max input length that cannot hold an input (None: the default, always fine)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return  # None is the default; another type is refused by build() naming the type
    if value < MIN_MAX_LENGTH:
        raise ConfigError(f"{flag} must be at least {MIN_MAX_LENGTH} tokens to hold an input (got {value!r}); "
                          "the default fits most tasks")
    if value > MAX_MAX_LENGTH:
        raise ConfigError(f"{flag} {value} is longer than any model reads; drop it to use the backbone's own limit")


def check_at_least(minimum: float, **values: Any) -> None:
    """Refuse each given number below ``minimum`` (None means "not set" and passes), naming its flag."""
    for name, value in values.items():
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= minimum):
            raise ConfigError(f"--{name.replace('_', '-')} must be a number >= {minimum:g} (got {value!r})")


@dataclasses.dataclass
class Options:
    """Base of option dataclasses that check themselves, serialise to JSON and give help per field.

    Method configs and search-strategy configs share it: a subclass adds fields (with
    ``metadata={"help": ...}``) and overrides :meth:`check`.
    """

    where: ClassVar[str] = "option(s)"

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Checks that need nothing else; raise ConfigError with a one-line fix."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        return build(cls, values, cls.where)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(cls)}

    @classmethod
    def option_lines(cls) -> list[str]:
        """One `--option name=...  help (default: ...)` line per field, for listings in the CLI."""
        lines = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            lines.append(option_line(f.name, str(f.metadata.get("help", "")), default))
        return lines


def option_line(name: str, text: str, default: Any) -> str:
    """One option's line in the CLI's listings (shared with the listing read from source, which must match)."""
    return f"    --option {name}=...  {text}" + ("" if "(default" in text else f" (default: {default})")

