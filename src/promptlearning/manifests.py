"""Manifests: the sha256 of every file in a folder the library built, checked whenever it is loaded.

Package archives are checked by sha256 when downloaded, but the folders made from them
(extracted model files, converted weights) are read many times afterwards. A manifest
written when such a folder is built records each file's sha256, size and modification
time; :func:`verify_folder` re-hashes a file only when its size or time changed, so the
check costs a ``stat`` per file on every load and catches any edit made through the file
system's normal paths. ``PROMPTLEARNING_VERIFY=full`` re-hashes every file on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from promptlearning.errors import ArtifactError

MANIFEST = ".promptlearning-manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: Path) -> None:
    """Record every file of ``folder`` (call it when the folder is complete, before it is used)."""
    entries: dict[str, Any] = {}
    for path in _files(folder):
        st = path.stat()
        entries[path.relative_to(folder).as_posix()] = {"sha256": _sha256(path), "size": st.st_size,
                                                          "mtime_ns": st.st_mtime_ns}
    (folder / MANIFEST).write_text(json.dumps({"format": 1, "files": entries}, indent=1, sort_keys=True) + "\n")


def has_manifest(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def verify_folder(folder: Path, what: str) -> None:
    """Refuse a folder whose files differ from its manifest, naming the file and what to delete.

    ``what`` says how the folder comes back once deleted (e.g. "it is extracted again from the
    verified package on the next load")."""
    fix = f"delete {folder} and {what}"
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        recorded: dict[str, dict[str, Any]] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ArtifactError(f"{folder} has no readable manifest, so its files cannot be checked; {fix}") from None
    full = os.environ.get("PROMPTLEARNING_VERIFY", "").lower() == "full"
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder)}
    missing = sorted(set(recorded) - set(present))
    if missing:
        raise ArtifactError(f"{folder / missing[0]} is missing; {fix}")
    extra = sorted(set(present) - set(recorded))
    if extra:
        raise ArtifactError(f"{folder / extra[0]} was added after the folder was built; {fix}")
    for rel, entry in recorded.items():
        st = present[rel].stat()
        if not full and st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]:
            continue
        if st.st_size != entry["size"] or _sha256(present[rel]) != entry["sha256"]:
            raise ArtifactError(f"{folder / rel} was modified after it was built (sha256 differs); {fix}")
