"""Config classes validate the same whether or not their module defers annotations.

This module deliberately has no ``from __future__ import annotations``: its config classes carry
real type objects, and the twins built from ``exec`` below carry the same annotations as text.
"""

import dataclasses
from typing import Any, Literal, Optional, Union

import pytest

from promptlearning.configs import Options, build, field_types, option
from promptlearning.errors import ConfigError


@dataclasses.dataclass
class Eager(Options):
    count: int = option(3, "an int")
    rate: float = option(0.5, "a float")
    flag: bool = option(False, "a bool")
    name: str = option("x", "a text")
    maybe: Optional[int] = option(None, "Optional[int]")  # noqa: UP045 - the old spelling is what is tested
    either: Union[int, str] = option(0, "Union[int, str]")  # noqa: UP007 - the old spelling is what is tested
    layers: list[int] | None = option(None, "a list or null")
    table: dict[str, float] = option({}, "a mapping")
    mode: Literal["a", "b"] = option("a", "a literal")
    anything: Any = option(None, "anything")


DEFERRED_SOURCE = '''
from __future__ import annotations
import dataclasses
from typing import Any, Literal, Optional, Union
from promptlearning.configs import Options, option

@dataclasses.dataclass
class Deferred(Options):
    count: int = option(3, "an int")
    rate: float = option(0.5, "a float")
    flag: bool = option(False, "a bool")
    name: str = option("x", "a text")
    maybe: Optional[int] = option(None, "Optional[int]")  # noqa: UP045 - the old spelling is what is tested
    either: Union[int, str] = option(0, "Union[int, str]")  # noqa: UP007 - the old spelling is what is tested
    layers: list[int] | None = option(None, "a list or null")
    table: dict[str, float] = option({}, "a mapping")
    mode: Literal["a", "b"] = option("a", "a literal")
    anything: Any = option(None, "anything")
'''


def _deferred() -> type:
    import sys
    import types

    module = types.ModuleType("deferred_config_module")
    sys.modules[module.__name__] = module  # get_type_hints reads the module's names from sys.modules
    exec(compile(DEFERRED_SOURCE, "<deferred>", "exec"), module.__dict__)
    return module.Deferred  # type: ignore[no-any-return]


BOTH = [Eager, _deferred()]


def test_the_two_styles_resolve_to_the_same_types() -> None:
    eager, deferred = BOTH
    assert isinstance(dataclasses.fields(deferred)[0].type, str)  # the twin really defers its annotations
    assert field_types(eager) == field_types(deferred)
    assert field_types(eager)["layers"] == (list[int] | None)


@pytest.mark.parametrize("cls", BOTH, ids=["eager", "deferred"])
def test_good_values_build(cls: type) -> None:
    config = cls.from_dict({"count": 4, "rate": 1, "flag": True, "name": "y", "maybe": 2, "either": "s",  # type: ignore[attr-defined]
                            "layers": [0, 1], "table": {"k": 2}, "mode": "b", "anything": [object()]})
    assert config.count == 4 and config.layers == [0, 1] and config.mode == "b"
    assert isinstance(config.rate, float) and config.rate == 1.0  # an integer given for a float becomes a float
    assert cls.from_dict({"maybe": None, "layers": None}).maybe is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", BOTH, ids=["eager", "deferred"])
@pytest.mark.parametrize(("name", "value", "message"), [
    ("count", 4.5, "option(s) count must be an integer (got 4.5)"),
    ("count", True, "option(s) count must be an integer (got True)"),
    ("count", "4", "option(s) count must be an integer (got '4')"),
    ("rate", "fast", "option(s) rate must be a number (got 'fast')"),
    ("flag", 1, "option(s) flag must be true or false (got 1)"),
    ("name", 3, "option(s) name must be a text (got 3)"),
    ("maybe", "x", "option(s) maybe must be an integer or null (got 'x')"),
    ("either", 1.5, "option(s) either must be an integer or a text (got 1.5)"),
    ("layers", [1, "2"], "option(s) layers must be list[int] or null (got [1, '2'])"),
    ("layers", 3, "option(s) layers must be list[int] or null (got 3)"),
    ("table", {"k": "v"}, "option(s) table must be dict[str, float] (got {'k': 'v'})"),
    ("mode", "c", "option(s) mode must be one of 'a', 'b' (got 'c')"),
])
def test_wrong_values_are_refused_with_the_same_message(cls: type, name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cls.from_dict({name: value})  # type: ignore[attr-defined]
    assert str(caught.value) == message


def test_build_checks_plain_dataclasses_too() -> None:
    @dataclasses.dataclass
    class Plain:
        steps: int = 1
        lr: Optional[float] = None  # noqa: UP045 - the old spelling is what is tested

    assert build(Plain, {"steps": 2, "lr": 3}).lr == 3.0
    with pytest.raises(ConfigError, match=r"^training option\(s\) steps must be an integer \(got 'x'\)$"):
        build(Plain, {"steps": "x"}, "training option(s)")


def test_a_name_known_only_to_type_checkers_leaves_the_other_fields_checked() -> None:
    import sys
    import types

    source = ("from __future__ import annotations\nimport dataclasses\nfrom typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from pathlib import Path\n"
              "@dataclasses.dataclass\nclass Partial:\n    where: Path | None = None\n    steps: int = 1\n")
    module = types.ModuleType("partial_config_module")
    sys.modules[module.__name__] = module
    exec(compile(source, "<partial>", "exec"), module.__dict__)
    kinds = field_types(module.Partial)
    assert kinds == {"where": "Path | None", "steps": int}
    from pathlib import Path

    assert build(module.Partial, {"where": None, "steps": 2}).steps == 2
    assert build(module.Partial, {"where": Path("x")}).where == Path("x")  # a PosixPath is a Path by its bases
