"""Finding extension modules without a hand-kept import list.

Methods, heads and search strategies register themselves with a class decorator when their
module is imported. Importing every module of their package once, on first use, means a new
method is one new file: nothing else needs to name it.
"""

from __future__ import annotations

import importlib
import pkgutil

_DONE: set[str] = set()


def import_submodules(package: str, skip: frozenset[str] = frozenset()) -> None:
    """Import every module of ``package`` (once per process) so their registrations run.

    Modules whose name starts with an underscore, and those in ``skip`` (the registry's own
    base module, helpers with nothing to register), are left alone.
    """
    if package in _DONE:
        return
    _DONE.add(package)
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name in skip:
            continue
        importlib.import_module(f"{package}.{info.name}")
