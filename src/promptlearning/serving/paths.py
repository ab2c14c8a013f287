"""Where adapters may be loaded from: names are plain words and paths stay inside ``--adapters-dir``.

Run-time loading takes a path from the network, so it must never reach outside the folder the operator
chose (``../``, absolute paths, symlinks pointing out): the path is resolved, links included, and must
lie inside the resolved folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from promptlearning.serving.limits import RequestError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    """An adapter name: letters, digits, ``_ . -``, at most 64 characters (it appears in URLs and metrics)."""
    if not _NAME.match(name):
        raise RequestError(f"adapter name {name!r} is not allowed; use letters, digits, '_', '.', '-' "
                           "(at most 64, starting with a letter or digit)", 422)
    return name


def adapter_path(path: str | Path, adapters_dir: Path | None) -> Path:
    """``path`` resolved inside ``adapters_dir`` (relative paths are relative to it); None: any path."""
    if adapters_dir is None:
        return Path(path)
    root = adapters_dir.resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not full.is_relative_to(root):
        raise RequestError(f"adapter path {str(path)!r} is outside --adapters-dir {root}; give a folder inside it",
                           403, "adapters_dir")
    return full
