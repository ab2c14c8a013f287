"""Images as examples: every image is a reference string, a file path or a ``data:`` URI.

An :class:`~promptlearning.data.examples.Example` holds text, and everything above it (few-shot
splits, fixed test sets, deduplication, bench stores, ``predict`` reading lines) works on those
strings. So an image example's ``text_a`` is where its pixels are: the path of a file (user folders,
``predict`` on image paths) or a PNG ``data:`` URI (the packaged image sets, built in memory). The
image model's :meth:`encode` opens the reference and hands the backbone's pixels on; nothing else
needs to know the example is a picture.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from promptlearning.data.batching import Encoded
from promptlearning.data.examples import Example, TaskData, split_fixed_test
from promptlearning.errors import DataError

DATA_URI_PREFIX = "data:image/png;base64,"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def image_uri(pixels: np.ndarray) -> str:
    """A lossless PNG ``data:`` URI of a (H, W) grey or (H, W, 3) RGB uint8 image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG", optimize=False)
    return DATA_URI_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def describe_ref(ref: str) -> str:
    """A short name of a reference for messages (data URIs are long)."""
    return "an in-memory image" if ref.startswith("data:") else repr(ref)


def open_image(ref: str) -> Any:
    """The PIL image a reference names, fully read; a missing or unreadable one is a one-line DataError."""
    from PIL import Image, UnidentifiedImageError

    source: Any
    if ref.startswith("data:"):
        head, _, body = ref.partition(",")
        if ";base64" not in head:
            raise DataError(f"{ref[:40]!r}... is a data URI without base64 content; encode the image in base64")
        try:
            source = io.BytesIO(base64.b64decode(body, validate=True))
        except ValueError:
            raise DataError(f"{ref[:40]!r}... is not valid base64; encode the image again") from None
    else:
        source = Path(ref)
        if not source.is_file():
            raise DataError(f"image {ref!r} does not exist or is not a file; give image paths, one per line")
    try:
        with Image.open(source) as image:
            image.load()
            return image.copy()
    except UnidentifiedImageError:  # its message names the stream object (<_io.BytesIO object at 0x...>)
        raise DataError(f"cannot read image {describe_ref(ref)} (not an image format Pillow reads); give a PNG, "
                        "JPEG, BMP, GIF, WebP or TIFF file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read image {describe_ref(ref)} ({why}); give a PNG, JPEG, BMP, GIF, WebP or TIFF "
                        "file") from None


def encode_images(examples: Sequence[Example], preprocess: Callable[[list[Any]], torch.Tensor],
                  task_id: int = 0, chunk: int = 256) -> list[Encoded]:
    """Rows of image examples: ``preprocess`` turns opened images into (N, 3, S, S) uint8 pixels.

    The row's ``input_ids`` are a digest of its pixels, so everything that identifies training data by
    its tokens (the trainer's resume check) identifies images by their content."""
    rows: list[Encoded] = []
    for start in range(0, len(examples), chunk):
        part = examples[start:start + chunk]
        pixels = preprocess([open_image(e.text_a) for e in part])  # (n, 3, S, S) uint8
        for example, image in zip(part, pixels, strict=True):
            digest = hashlib.sha256(image.numpy().tobytes()).digest()[:4]
            rows.append(Encoded(tuple(digest), None, example.label, task_id, pixels=image))
    return rows


def load_image_folder(train_dir: str | Path, test_dir: str | Path | None = None,
                      description: str | None = None) -> TaskData:
    """A task from a folder with one sub-folder of images per label (the label is the sub-folder's name).

    Without ``test_dir`` a fixed part is held out for test, as for a training file alone."""
    train, labels = _folder_examples(Path(train_dir), None)
    name = Path(train_dir).resolve().name or "images"
    text = description or f"Decide which of {', '.join(labels)} an image shows."
    if test_dir is None:
        pool, test = split_fixed_test(train)
        return TaskData(name, labels, text, pool, test)
    test, _ = _folder_examples(Path(test_dir), labels)
    return TaskData(name, labels, text, train, test)


def labelled_image_folder(root: str | Path, labels: Sequence[str]) -> list[Example]:
    """The images of a folder with one sub-folder per label, under a saved adapter's label names: what
    ``evaluate --test-file FOLDER`` scores an image adapter on."""
    return _folder_examples(Path(root), list(labels))[0]


def _folder_examples(root: Path, labels: list[str] | None) -> tuple[list[Example], list[str]]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give a folder with one sub-folder of images per label")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [p.name for p in folders]
    if labels is None:
        if len(found) < 2:
            raise DataError(f"{root} has {len(found)} label sub-folder(s); an image task needs at least 2 "
                            "(one sub-folder of images per label)")
        labels = found
    unknown = sorted(set(found) - set(labels))
    if unknown:
        raise DataError(f"{root} has label folder(s) {unknown[:3]} that the training folder lacks; rename or remove them")
    examples: list[Example] = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"label folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            "add some or remove the folder")
        index = labels.index(folder.name)
        examples.extend(Example(str(f.resolve()), index) for f in files)
    return examples, labels
