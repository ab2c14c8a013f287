"""The report's PNG figures (matplotlib, Agg backend: no display needed on a server).

Each function takes plain numbers the report already aggregated, so the figures and the
tables cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Series = dict[str, list[tuple[float, float, float]]]  # label -> [(x, mean, std)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_shots(series: Series, path: Path, title: str) -> Path:
    """Mean test accuracy (over tasks) against K, one line per method, std over seeds as bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        points = sorted(points)
        ax.errorbar([p[0] for p in points], [100 * p[1] for p in points], yerr=[100 * p[2] for p in points],
                    marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ks = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("K (training examples per class)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def dev_curves(curves: dict[str, Series], path: Path, title: str) -> Path:
    """Dev accuracy against training step: one panel per task, one line per method (mean over seeds)."""
    plt = _pyplot()
    tasks = list(curves)
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for label, points in curves[task].items():
            points = sorted(points)
            xs, ys = [p[0] for p in points], [100 * p[1] for p in points]
            lo = [100 * (p[1] - p[2]) for p in points]
            hi = [100 * (p[1] + p[2]) for p in points]
            (line,) = ax.plot(xs, ys, label=label)
            ax.fill_between(xs, lo, hi, alpha=0.12, color=line.get_color())
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("dev accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_vs_parameters(points: Sequence[tuple[str, float, float]], path: Path, title: str) -> Path:
    """Mean test accuracy against trainable parameters (log scale), one labelled point per method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, params, acc in points:
        ax.scatter([params], [100 * acc], s=40)
        ax.annotate(label, (params, 100 * acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel("test accuracy (%), mean over tasks and seeds")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
