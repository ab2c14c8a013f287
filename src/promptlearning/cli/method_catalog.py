"""What `promptlearning methods` lists, read from the methods' source when that is enough.

Every method module imports torch (its class is an ``nn.Module``), and importing torch costs a
second or more: too long for a listing. The built-in methods declare what the listing shows as
literals (``name``, ``summary``, ``config_class`` and fields written ``option(default, help)``),
so they are read from the source files with :mod:`ast`, importing nothing. Whenever that reading
is not certain to equal the registry (an installed plugin, a method registered in this process,
a default that is not a literal, an unknown base class), the registry itself is asked instead:
slower, never different.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from promptlearning.configs import option_line

_GROUP = "promptlearning.methods"  # entry-point group of method plugins (methods.base.ENTRY_POINT_GROUP)
_CONFIG_ROOTS = frozenset({"MethodConfig", "Options"})  # bases that add no fields


@dataclass(frozen=True)
class MethodEntry:
    """One method as listed: its name, one-line summary and one line per option."""

    name: str
    summary: str
    option_lines: tuple[str, ...]


class _Unsure(Exception):
    """The source says something the reader cannot turn into the registry's answer."""


def listed_methods() -> list[MethodEntry]:
    """Every method, sorted by name: from the source when certain, else from the registry."""
    if "promptlearning.methods.base" not in sys.modules and not entry_points(group=_GROUP):
        try:
            return read_from_source()
        except _Unsure:
            pass
    return read_from_registry()


def read_from_registry() -> list[MethodEntry]:
    """The registry's own answer (imports every method, torch included)."""
    from promptlearning.methods import list_methods

    return [MethodEntry(cls.name, cls.summary, tuple(cls.config_class.option_lines())) for cls in list_methods()]


def _methods_dir() -> Path:
    spec = importlib.util.find_spec("promptlearning")  # the package, not promptlearning.methods: that imports torch
    if spec is None or not spec.submodule_search_locations:
        raise _Unsure("promptlearning has no source folder")
    return Path(next(iter(spec.submodule_search_locations))) / "methods"


def read_from_source() -> list[MethodEntry]:
    """The registered methods of the package's method modules, read without importing them."""
    folder = _methods_dir()
    modules = {path.stem: _Module(path) for path in sorted(folder.glob("*.py")) if not path.stem.startswith("_")}
    if not modules:
        raise _Unsure("no method modules found")
    entries = [entry for module in modules.values() for entry in module.registered(modules)]
    return sorted(entries, key=lambda e: e.name)


class _Module:
    """One method module's parsed source: its classes and the names it imports from sibling modules."""

    def __init__(self, path: Path) -> None:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        self.classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        self.imported: dict[str, tuple[str, str]] = {}  # local name -> (sibling module, its name)
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("promptlearning.methods."):
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = (node.module.rsplit(".", 1)[1], alias.name)

    def registered(self, modules: dict[str, _Module]) -> list[MethodEntry]:
        out = []
        for node in self.classes.values():
            if not any(_name_of(d) == "register_method" for d in node.decorator_list):
                continue
            attrs = _class_constants(node)
            if not {"name", "summary", "config_class"} <= set(attrs):
                raise _Unsure(f"{node.name} inherits its name, summary or config class")
            config_name = attrs["config_class"]
            if not isinstance(config_name, _Ref):
                raise _Unsure(f"{node.name}.config_class is not a class name")
            fields = self.config_fields(config_name.name, modules)
            lines = tuple(option_line(name, text, default) for name, (text, default) in fields.items())
            out.append(MethodEntry(str(attrs["name"]), str(attrs["summary"]), lines))
        return out

    def resolve(self, name: str, modules: dict[str, _Module]) -> tuple[_Module, ast.ClassDef]:
        if name in self.classes:
            return self, self.classes[name]
        if name in self.imported:
            module_name, real = self.imported[name]
            if module_name in modules:
                return modules[module_name].resolve(real, modules)
        raise _Unsure(f"class {name} is not defined in the method modules")

    def config_fields(self, name: str, modules: dict[str, _Module]) -> dict[str, tuple[str, Any]]:
        """The dataclass fields of config class ``name`` in definition order, bases first: name -> (help, default)."""
        module, node = self.resolve(name, modules)
        fields: dict[str, tuple[str, Any]] = {}
        for base in node.bases:
            base_name = _name_of(base)
            if base_name in _CONFIG_ROOTS:
                continue
            if base_name is None:
                raise _Unsure(f"{name} has a base that is not a plain name")
            fields.update(module.config_fields(base_name, modules))
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if "ClassVar" in ast.unparse(stmt.annotation):
                    continue
                fields[stmt.target.id] = _field(stmt.value, f"{name}.{stmt.target.id}")
        return fields


@dataclass(frozen=True)
class _Ref:
    name: str


def _name_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _class_constants(node: ast.ClassDef) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            if isinstance(stmt.value, ast.Name):
                out[stmt.targets[0].id] = _Ref(stmt.value.id)
            else:
                try:
                    out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                except ValueError:
                    continue
    return out


def _field(value: ast.expr | None, where: str) -> tuple[str, Any]:
    """(help, default) of one field written ``option(default, help)`` (or a plain literal default)."""
    try:
        if isinstance(value, ast.Call) and _name_of(value.func) == "option" and not value.keywords \
                and len(value.args) == 2:
            return str(ast.literal_eval(value.args[1])), ast.literal_eval(value.args[0])
        if value is not None and not isinstance(value, ast.Call):
            return "", ast.literal_eval(value)
    except ValueError:
        pass
    raise _Unsure(f"{where}: the default is not a literal")
