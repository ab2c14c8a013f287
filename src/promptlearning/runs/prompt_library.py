"""A prompt library: every task met so far, with its trained adapter and its task representation.

Saved as a directory::

    library.json                         index: format, backbone identity, one record per entry
    entries/<NNN>-<task>/representation.safetensors   the task representation (D,)
    entries/<NNN>-<task>/adapter/                      the task's adapter (config + safetensors)

Writes are crash-safe: an entry's directory is built aside and swapped in whole
(:func:`promptlearning.fileio.atomic_directory`), then the index is replaced in one rename.
A crash between the two leaves the previous index, which still describes a usable library.
A missing or corrupt file is reported with a one-line error; nothing is ever deleted to
"repair" it, so stored entries are never lost.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from promptlearning.backbones import Backbone
from promptlearning.data.task_info import TaskInfo, cosine_ranking
from promptlearning.errors import AdapterError, ConfigError
from promptlearning.fileio import atomic_directory, read_json
from promptlearning.model import PromptModel

INDEX_FILE = "library.json"
ENTRIES_DIR = "entries"
REPR_FILE = "representation.safetensors"
ADAPTER_DIR = "adapter"
FORMAT = 1
KIND = "promptlearning-prompt-library"


@dataclass
class LibraryEntry:
    """One stored task: what it is, how it is represented, and where its adapter lives."""

    task: TaskInfo
    repr_kind: str
    representation: torch.Tensor  # (D,) float32
    directory: Path  # the entry's directory inside the library
    method: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def adapter(self) -> Path:
        return self.directory / ADAPTER_DIR

    def record(self, root: Path) -> dict[str, Any]:
        return {"task": self.task.to_dict(), "repr_kind": self.repr_kind, "dir": str(self.directory.relative_to(root)),
                "method": self.method, "metrics": dict(self.metrics)}


def _corrupt(path: Path, why: str) -> AdapterError:
    return AdapterError(f"prompt library file {path} {why}; restore it from a copy or start a new library directory")


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PromptLibrary:
    """Stored task prompts with nearest-task retrieval by cosine similarity of task representations."""

    def __init__(self, directory: str | Path, backbone: dict[str, Any] | None = None,
                 entries: Sequence[LibraryEntry] = ()) -> None:
        self.directory = Path(directory)
        self.backbone = backbone  # identity of the backbone every stored prompt was made on
        self._entries: dict[str, LibraryEntry] = {e.name: e for e in entries}

    # ------------------------------------------------------------------ opening and saving
    @classmethod
    def open(cls, directory: str | Path, create: bool = True) -> PromptLibrary:
        """Read a library; a directory without an index is a new, empty library when ``create``."""
        root = Path(directory)
        index = root / INDEX_FILE
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root} is a file, not a prompt library folder; give a folder (a new one starts an "
                              "empty library)")
        if not index.exists():
            if root.is_dir() and (root / ENTRIES_DIR).is_dir() and any((root / ENTRIES_DIR).iterdir()):
                raise _corrupt(index, "is missing but the library holds entries")
            if not create:
                raise ConfigError(f"{root} is not a prompt library (no {INDEX_FILE}); give the directory that "
                                  "`promptlearning continual --library` wrote")
            return cls(root)
        data = read_json(index, lambda why: _corrupt(index, why.replace(str(index), "").strip() or "is unreadable"))
        if not isinstance(data, dict) or data.get("kind") != KIND or not isinstance(data.get("entries"), list):
            raise _corrupt(index, "is not a prompt library index")
        if data.get("format") != FORMAT:
            raise _corrupt(index, f"has format {data.get('format')!r}, this version reads {FORMAT}")
        entries = []
        for record in data["entries"]:
            try:
                entry_dir = _inside(root, str(record["dir"]), index)
                entries.append(LibraryEntry(TaskInfo.from_dict(record["task"]), str(record["repr_kind"]),
                                            _read_repr(entry_dir / REPR_FILE), entry_dir, str(record.get("method", "")),
                                            {str(k): float(v) for k, v in dict(record.get("metrics") or {}).items()}))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _corrupt(index, f"has a malformed entry ({type(exc).__name__}: {exc})") from exc
        backbone = data.get("backbone")
        return cls(root, backbone if isinstance(backbone, dict) else None, entries)

    def _save_index(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.directory / INDEX_FILE, {
            "kind": KIND, "format": FORMAT, "backbone": self.backbone,
            "entries": [e.record(self.directory) for e in self._entries.values()]})

    # ------------------------------------------------------------------ contents
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    @property
    def entries(self) -> list[LibraryEntry]:
        return list(self._entries.values())

    def get(self, name: str) -> LibraryEntry:
        if name not in self._entries:
            raise ConfigError(f"task {name!r} is not in the prompt library {self.directory}; "
                              f"it holds: {', '.join(self._entries) or 'nothing yet'}")
        return self._entries[name]

    def check_backbone(self, backbone: Backbone) -> None:
        """Refuse a backbone other than the one the stored prompts were made on."""
        if self.backbone is None:
            return
        have = backbone.info.to_dict()
        if self.backbone.get("fingerprint") != have["fingerprint"] or self.backbone.get("name") != have["name"]:
            raise AdapterError(f"the prompt library {self.directory} holds prompts for backbone "
                               f"{self.backbone.get('name')!r}, not {have['name']!r}; use --backbone "
                               f"{self.backbone.get('name')} or a new library directory")

    def add(self, task: TaskInfo, representation: torch.Tensor, model: PromptModel, repr_kind: str,
            metrics: dict[str, float] | None = None) -> LibraryEntry:
        """Store (or replace) a task's adapter and representation; crash-safe."""
        self.check_backbone(model.backbone)
        old = self._entries.get(task.name)
        if old is not None:
            entry_dir = old.directory
        else:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", task.name)[:40] or "task"
            entry_dir = self.directory / ENTRIES_DIR / f"{len(self._entries):03d}-{slug}"
            while entry_dir.exists():  # an orphan left by a crash before its index update: keep it, go around
                entry_dir = entry_dir.with_name(entry_dir.name + "_")
        rep = representation.detach().float().cpu().contiguous()  # (D,)
        with atomic_directory(entry_dir, marker_files=(REPR_FILE, ADAPTER_DIR)) as tmp:
            save_file({"representation": rep}, str(tmp / REPR_FILE))
            model.save_pretrained(tmp / ADAPTER_DIR, extra={"task": task.name, "library": str(self.directory)})
        entry = LibraryEntry(task, repr_kind, rep, entry_dir, type(model.method).name, dict(metrics or {}))
        if self.backbone is None:
            info = model.backbone.info.to_dict()
            self.backbone = {k: info[k] for k in ("name", "fingerprint", "hidden_size", "num_layers")}
        self._entries[task.name] = entry
        self._save_index()
        return entry

    # ------------------------------------------------------------------ retrieval
    def nearest(self, query: torch.Tensor, k: int = 1, repr_kind: str | None = None,
                exclude: Sequence[str] = ()) -> list[tuple[LibraryEntry, float]]:
        """The ``k`` stored tasks whose representations are most cosine-similar to ``query``, best first."""
        if k < 1:
            raise ConfigError(f"k must be >= 1 (got {k})")
        pool = [e for e in self._entries.values()
                if e.name not in exclude and (repr_kind is None or e.repr_kind == repr_kind)]
        if not pool:
            what = ("is empty" if not self._entries else "has no other task"
                    + (f" with a {repr_kind!r} representation" if repr_kind else ""))
            raise ConfigError(f"the prompt library {self.directory} {what}; store a task first "
                              "(train one with `promptlearning continual`) or start from scratch")
        sizes = {e.representation.shape[0] for e in pool}
        if sizes != {query.shape[-1]}:
            raise ConfigError(f"task representations of size {query.shape[-1]} cannot be compared with the library's "
                              f"{sorted(sizes)}; use the backbone the library was made with")
        keys = torch.stack([e.representation for e in pool])  # (N, D)
        return [(pool[i], sim) for i, sim in cosine_ranking(query.detach().float().cpu(), keys)[:k]]

    def prompt_state(self, name: str) -> dict[str, torch.Tensor]:
        """The stored method tensors of a task (e.g. ``{"prompt": (P, H)}``), without the head."""
        from promptlearning.adapters import WEIGHTS_FILE, load_tensors

        state = load_tensors(self.get(name).adapter / WEIGHTS_FILE)
        return {k[len("method."):]: v for k, v in state.items() if k.startswith("method.")}

    def load_model(self, name: str, backbone: Backbone | None = None) -> PromptModel:
        """The stored adapter of a task, ready to evaluate."""
        return PromptModel.from_pretrained(self.get(name).adapter, backbone=backbone)


def _inside(root: Path, relative: str, index: Path) -> Path:
    """An entry's folder, which must lie in the library's entries/ folder: an index naming any other place
    (``../elsewhere``, an absolute path, a link out) is refused, so nothing outside is read or written."""
    entries = (root / ENTRIES_DIR).resolve()
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(entries) or path.resolve() == entries:
        raise _corrupt(index, f"names an entry folder outside {root / ENTRIES_DIR} ({relative!r})")
    return path


def _read_repr(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise _corrupt(path, "is missing")
    try:
        tensor = load_file(str(path)).get("representation")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _corrupt(path, f"is corrupt ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
    if tensor is None or tensor.ndim != 1:
        raise _corrupt(path, "holds no (D,) representation")
    return tensor.float()
