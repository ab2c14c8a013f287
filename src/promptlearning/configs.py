"""Strict construction of config dataclasses from YAML, JSON or ``--option`` values.

Unknown keys and wrongly typed values are refused with one line naming the option, so a
typo in a config file never turns into a silent default or a traceback deep in a model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

from promptlearning.errors import ConfigError

T = TypeVar("T")


def option(default: Any, help: str) -> Any:
    """A config field with help text (mutable defaults handled); the help text feeds the CLI."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})

_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _matches(value: Any, annotation: str) -> bool:
    options = [a.strip() for a in annotation.split("|")]
    if value is None:
        return "None" in options
    for opt in options:
        if opt in _SCALARS:
            ok = isinstance(value, _SCALARS[opt]) and not (opt in ("int", "float") and isinstance(value, bool))
            if ok:
                return True
        elif opt.startswith("list[") and isinstance(value, list):
            return all(_matches(v, opt[5:-1]) for v in value)
        elif opt.startswith("dict[") and isinstance(value, dict):
            key, _, val = opt[5:-1].partition(",")
            return all(_matches(k, key) and _matches(v, val) for k, v in value.items())
        elif opt in ("Any", "object") or type(value).__name__ == opt:
            return True
    return False


def _describe(annotation: str) -> str:
    words = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a text"}
    parts = [a.strip() for a in annotation.split("|")]
    return " or ".join(words.get(p, "null" if p == "None" else p) for p in parts)


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
    for name, value in values.items():
        annotation = str(fields[name].type)
        if not _matches(value, annotation):
            raise ConfigError(f"{where.rstrip('s')} {name} must be {_describe(annotation)} (got {value!r})")
    converted = {k: float(v) if str(fields[k].type).startswith("float") and isinstance(v, int) else v
                 for k, v in values.items()}
    return cls(**converted)


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
            text = str(f.metadata.get("help", ""))
            lines.append(f"    --option {f.name}=...  {text}" + ("" if "(default" in text else f" (default: {default})"))
        return lines

