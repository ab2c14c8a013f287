"""Crash-safe writing: a directory is built aside, made durable, and swapped in whole.

A failed, interrupted or killed save must never destroy the adapter or checkpoint already
there, and a power loss must not lose one that was reported saved. The swap takes two
renames (target -> ``.NAME.old-PID``, then the new copy -> target); a kill between them
leaves no target but a complete old copy, which :func:`recover_directory` puts back before
anything reads or writes the target again. Every file and folder is fsync'ed before the
swap and the parent folder after it.

A save also never replaces what it did not write: a regular file, or a folder that does
not look like the artifact being saved, is refused with a one-line error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptlearning.errors import AdapterError, ConfigError

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>old|tmp)-(?P<pid>\d+)(-.*)?$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _leftovers(target: Path) -> list[tuple[str, int, Path]]:
    """(kind, pid, path) of the ``.NAME.old-PID`` / ``.NAME.tmp-PID-*`` folders next to ``target``."""
    out = []
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return []
    for path in siblings:
        m = _LEFTOVER.match(path.name)
        if m and m.group("name") == target.name:
            out.append((m.group("kind"), int(m.group("pid")), path))
    return out


def recover_directory(target: Path) -> None:
    """Undo what a killed save left behind next to ``target``.

    If ``target`` is missing and a complete old copy from a dead process exists, it is put
    back; temporary folders of dead processes are removed. Live processes' folders are left
    alone (they may be saving right now)."""
    target = Path(target)
    found = _leftovers(target)
    dead = [(kind, pid, path) for kind, pid, path in found if not _alive(pid)]
    olds = sorted((p for kind, _, p in dead if kind == "old"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not target.exists() and olds:
        os.replace(olds[0], target)
        _fsync_dir(target.parent)
        olds = olds[1:]
    for path in olds + [p for kind, _, p in dead if kind == "tmp"]:
        shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not support fsync on folders
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_file(Path(folder) / name)
        _fsync_dir(Path(folder))


def check_replaceable(target: Path, marker_files: Sequence[str] = ()) -> None:
    """Refuse to replace ``target`` unless it is missing, an empty folder, or a folder holding one
    of ``marker_files`` (the files this kind of artifact always has)."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir() or target.is_symlink():
        raise ConfigError(f"{target} exists and is not a folder; choose another output path or remove it")
    if not marker_files:
        return
    try:
        empty = not any(target.iterdir())
    except OSError as exc:
        raise ConfigError(f"cannot read {target} ({exc.strerror}); choose another output path") from None
    if empty or any((target / name).exists() for name in marker_files):
        return
    raise ConfigError(f"{target} is a folder that promptlearning did not write (no {marker_files[0]}); it is "
                      "left untouched: choose another output path, or empty it first")


@contextmanager
def atomic_directory(target: Path, marker_files: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target`` whole, durably.

    ``marker_files``: if given, an existing non-empty ``target`` is replaced only when it holds
    one of them (a folder of the user's is never deleted)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot create {target.parent}: a file is in the way; choose another output path") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {target.parent} ({exc.strerror}); choose a writable output path") from None
    recover_directory(target)
    check_replaceable(target, marker_files)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    except OSError as exc:
        raise ConfigError(f"cannot write in {target.parent} ({exc.strerror}); choose a writable output path") from None
    try:
        yield tmp
        _open_permissions(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)  # a kill before this line leaves `old`, which recover_directory restores
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    """The process's umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_permissions(tree: Path) -> None:
    """Give a finished temporary tree the modes a plain mkdir/open would (mkdtemp and mkstemp make them private),
    so an adapter saved by one user can be served or read by another as any file of theirs could."""
    mask = _umask()
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Replace one file whole and durably (an index, a manifest): readers see the old or the new text."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; the result is a plain file like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_json(path: Path, on_error: Callable[[str], Exception]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise on_error(f"{path} is missing") from exc
    except IsADirectoryError as exc:
        raise on_error(f"{path} is a folder, not a file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise on_error(f"{path} is not valid JSON ({exc.__class__.__name__})") from exc


def read_safetensors(path: Path, missing_fix: str, corrupt_fix: str) -> dict[str, Any]:
    """The tensors of an adapter's safetensors file, or one AdapterError naming the file and the fix.

    (safetensors, and so torch, is imported here rather than at the top: this module is on the CLI's start-up path.)"""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise AdapterError(f"{path} is missing; {missing_fix}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(f"{path} is corrupt ({str(exc).splitlines()[0]}); {corrupt_fix}") from exc
