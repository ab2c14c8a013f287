"""Memory before and after: will a backbone fit, and how much did a run use.

A 1.8B-parameter model needs ~7 GB in float32; on a small machine loading it would end with
the kernel killing the process, long after the user started it and with no message. So the
weights' size in the requested dtype is compared with the free memory *before* loading, and
a shortfall is one line naming the fix (a smaller dtype, a smaller backbone, a bigger
machine). After a run, the peak resident memory (or, on a GPU, the peak allocated by torch)
is what train and evaluate report, so users can size their machines from real numbers.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

import torch

from promptlearning.backbone_catalog import DTYPE_NAMES, FACTS
from promptlearning.errors import BackboneError, ConfigError

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}

#: loading holds the weights plus some working room (tokenizer, activations of a first batch)
HEADROOM = 1.2
#: converting a GGUF holds the packed tensors beside the dequantised float32 ones (measured: 11 GB for 7 GB)
CONVERSION_FACTOR = 1.6
#: set to ``off`` to load whatever the check says
CHECK_ENV = "PROMPTLEARNING_MEMORY_CHECK"


def parse_dtype(value: str | torch.dtype) -> torch.dtype:
    """A torch dtype from ``float32``/``bfloat16``/``float16`` (or a dtype itself)."""
    if isinstance(value, torch.dtype):
        if value not in DTYPES.values():
            raise ConfigError(f"unsupported dtype {value}; choose one of: {', '.join(DTYPES)}")
        return value
    if value not in DTYPES:
        raise ConfigError(f"unknown dtype {value!r}; choose one of: {', '.join(DTYPES)}")
    return DTYPES[value]


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, d in DTYPES.items() if d == dtype)


def weight_count(name_or_path: str) -> int | None:
    """Parameters of a packaged backbone, or of a local folder read from its safetensors headers;
    None when it cannot be known without loading (a hub id, a folder of .bin files)."""
    if name_or_path in FACTS:
        return FACTS[name_or_path].params or None
    folder = Path(name_or_path)
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        header = _safetensors_header(path)
        if header is None:
            return None
        for key, entry in header.items():
            if key != "__metadata__":
                count = 1
                for dim in entry.get("shape", []):
                    count *= int(dim)
                total += count
    return total


def _safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), or None."""
    try:
        with path.open("rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            if not 0 < length < 1 << 28:
                return None
            header = json.loads(fh.read(length))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def available_bytes() -> int | None:
    """Memory the process may still use: MemAvailable on Linux (None where it cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def required_bytes(params: int, dtype: torch.dtype, factor: float = HEADROOM) -> int:
    return int(params * torch.empty((), dtype=dtype).element_size() * factor)


def check_fits(name: str, params: int | None, dtype: torch.dtype, factor: float = HEADROOM,
               available: int | None = None) -> None:
    """Raise BackboneError if ``params`` weights in ``dtype`` will not fit in the free memory.

    ``available`` defaults to :func:`available_bytes`; when neither the size nor the free
    memory is known, nothing is checked (better to try than to refuse without evidence)."""
    if os.environ.get(CHECK_ENV, "").lower() == "off" or not params:
        return
    free = available if available is not None else available_bytes()
    need = required_bytes(params, dtype, factor)
    if free is None or need <= free:
        return
    smaller = [d for d in ("bfloat16",) if DTYPES[d].itemsize < dtype.itemsize
               and required_bytes(params, DTYPES[d], factor) <= free]
    fix = f"pass --dtype {smaller[0]}" if smaller else "use a smaller backbone or a machine with more memory"
    raise BackboneError(f"backbone {name} needs about {need / 2**30:.1f} GiB ({params / 1e6:,.0f}M params in "
                        f"{dtype_name(dtype)}) but only {free / 2**30:.1f} GiB is free; {fix} "
                        f"(or set {CHECK_ENV}=off to try anyway)")


def peak_memory() -> dict[str, float]:
    """Peak memory of this process so far, in MiB: resident set size, and torch's CUDA peak if used."""
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_rss_mib": round(rss_kib / (1024 * 1024) if sys.platform == "darwin" else rss_kib / 1024, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def describe_peak(peak: dict[str, float]) -> str:
    text = f"peak memory {peak['peak_rss_mib']:,.0f} MiB resident"
    if "cuda_max_allocated_mib" in peak:
        text += f", {peak['cuda_max_allocated_mib']:,.0f} MiB CUDA allocated"
    return text
