"""What a results table needs that training does not report: the machine, peak memory and latency.

Shared by the job kinds (each row records the machine it ran on) and by the runner (the
store's meta names the machine of the last sweep).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import socket
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


# ---------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where and with what the numbers were measured (goes into every row and the report)."""
    import transformers

    from promptlearning.version import __version__

    info: dict[str, Any] = {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "torch": torch.__version__, "transformers": transformers.__version__,
                            "promptlearning": __version__, "gpu": None}
    try:
        import peft

        info["peft"] = peft.__version__
    except ImportError:
        info["peft"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------------------- measurements
def reset_peak_memory(device: torch.device | None = None) -> str:
    """Start a fresh peak; returns what the peak will mean (stated in the report)."""
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda max_memory_allocated"
    try:  # Linux: writing 5 resets the RSS high-water mark that getrusage reports
        Path("/proc/self/clear_refs").write_text("5")
        return "process RSS high-water mark during the job (CPU)"
    except OSError:
        return "process RSS high-water mark since the process started (CPU)"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024 if platform.system() != "Darwin" else kb / 2**20


@torch.no_grad()
def measure_latency(model: Any, items: list[Any], batch_size: int, repeats: int = 3) -> dict[str, Any]:
    """Median forward time of the model and of the bare backbone on the same eval batch."""
    from promptlearning.data.batching import batches

    if not items:
        return {}
    batch = batches(items[:batch_size], batch_size, model.pad_id, model.left_pad)[0].to(model.device)
    batch = dataclasses.replace(batch, labels=None)
    bare = model.backbone.model
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)

    def timed(fn: Callable[[], Any]) -> float:
        sync()
        started = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - started

    def run_model() -> Any:
        return model(batch)

    def run_bare() -> Any:
        if batch.pixel_values is not None:  # an image backbone: its own forward on the same pixels
            return model.backbone.forward_images(batch.pixel_values)
        return bare(input_ids=batch.input_ids, attention_mask=batch.attention_mask)

    was_training = model.training
    model.eval()
    timed(run_model), timed(run_bare)  # warm-up
    ours, base = [], []
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        ours.append(timed(run_model))
        base.append(timed(run_bare))
    model.train(was_training)
    m, b = statistics.median(ours), statistics.median(base)
    return {"latency_model_ms": 1000 * m, "latency_backbone_ms": 1000 * b, "latency_overhead": m / b,
            "latency_batch": len(batch), "latency_seq_len": int(batch.input_ids.shape[1])}
