"""Finding extension modules without a hand-kept import list.

Methods, heads and search strategies register themselves with a class decorator when their
module is imported. Importing every module of their package once, on first use, means a new
built-in method is one new file: nothing else needs to name it.

A method (or any extension) kept *outside* the package is found in one of two ways:

* its module is imported before the library looks the name up (``import my_method`` in the
  Python program or launcher script that then calls the API or ``promptlearning.cli.main.main``);
* its package declares an entry point in the group the registry reads, e.g. for methods in its
  ``pyproject.toml``::

      [project.entry-points."promptlearning.methods"]
      my_method = "my_package.my_method"

  Once that package is installed (``pip install -e .``), every command, the ``promptlearning``
  CLI included, imports the module before it needs a method, and adapters saved with the method
  load like built-in ones.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from importlib.metadata import entry_points

_DONE: set[str] = set()
_SCANNED: set[str] = set()  # entry-point groups read in this process
_LOADED: set[tuple[str, str, str]] = set()  # (group, name, value) of every entry point imported


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


def load_entry_points(group: str, again: bool = False) -> list[str]:
    """Import the installed plugins of entry-point ``group``; return the names imported by this call.

    The installed packages are scanned once per process; ``again`` scans them anew (a name was
    not found: perhaps a package was installed since) and imports only entry points not seen
    before. A plugin that fails to import is skipped with a warning naming it, so one broken
    package never stops the library or the other plugins.
    """
    if group in _SCANNED and not again:
        return []
    _SCANNED.add(group)
    loaded = []
    for point in entry_points(group=group):
        key = (group, point.name, point.value)
        if key in _LOADED:
            continue
        _LOADED.add(key)
        try:
            point.load()
        except Exception as exc:  # noqa: BLE001 - any failure of third-party code is reported, not raised
            warnings.warn(f"skipped the {group} plugin {point.name!r} ({point.value}): it failed to import "
                          f"({type(exc).__name__}: {exc}); fix or uninstall the package that declares it",
                          stacklevel=2)
            continue
        loaded.append(point.name)
    return loaded
