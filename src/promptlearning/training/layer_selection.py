"""Search, then retrain: pick the layers under a budget (or a gate threshold) and train the fixed model from scratch.

The searched gates only choose the architecture; the final model is rebuilt with
``selected_layers`` (no gates, nothing below the lowest chosen layer trains) and retrained
on all the few-shot training data, as DARTS-style methods do.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlearning.data.batching import Encoded
from promptlearning.methods.protocols import layer_gates_of
from promptlearning.model import PromptModel
from promptlearning.training.config import TrainConfig
from promptlearning.training.gate_search import BilevelTrainer, SearchConfig, split_for_search


@dataclass
class SearchResult:
    chosen_layers: list[int]
    gate_history: list[tuple[int, list[float]]] = field(default_factory=list)
    final_gates: list[float] = field(default_factory=list)
    search_seconds: float = 0.0
    search_steps: int = 0
    # every search step's gates and gate gradients (BilevelTrainer.gate_trace); the search's best-on-dev
    # step, whose gates choose the layers unless the search says gates_from=last; the supernet's dev accuracy
    # at each evaluation
    gate_trace: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0
    dev_curve: list[tuple[int, float]] = field(default_factory=list)


def search_layers(model: PromptModel, train_cfg: TrainConfig, search: SearchConfig, train: list[Encoded],
                  dev: list[Encoded], output_dir: Path | None, resume: bool = False) -> SearchResult:
    """Run the bi-level search on ``model`` and return the top-K layers and the gate history."""
    method = layer_gates_of(model.method, "the layer search (--budget)")
    method.top_layers(search.budget)  # fails early, with a clear message, when K exceeds the candidates
    weights_part, val_part = split_for_search(train, search.val_fraction, len(model.labels), train_cfg.seed)
    cfg = dataclasses.replace(train_cfg, max_steps=search.search_steps or train_cfg.max_steps)
    started = time.perf_counter()
    trainer = BilevelTrainer(model, cfg, search, weights_part, val_part, dev,
                             output_dir / "search" if output_dir is not None else None)
    fit = trainer.fit(resume=resume and output_dir is not None and (output_dir / "search" / "checkpoint").is_dir())
    if search.gates_from == "last":
        trainer.restore_last_gates()
    history = [(int(h["step"]), list(h["gates"])) for h in fit.history if "gates" in h]
    final = [float(p) for p in method.probabilities()]
    trace = [(int(t["step"]), list(t["gates"])) for t in trainer.gate_trace]
    if output_dir is not None and (trace or history) and trainer.parallel.is_main:
        plot_gates(trace or history, method.candidate_layers, output_dir / "gates.png")
    chosen = method.select_layers(search.budget, search.threshold)
    dev_curve = [(int(h["step"]), float(h["dev_accuracy"])) for h in fit.history if "dev_accuracy" in h]
    return SearchResult(chosen, history, final, time.perf_counter() - started, fit.steps,
                        list(trainer.gate_trace), fit.best_step, dev_curve)


def plot_gates(history: list[tuple[int, list[float]]], layers: list[int], path: Path) -> Path | None:
    """A PNG of every candidate layer's gate probability over the search steps."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are an optional extra
        return None
    steps = [s for s, _ in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, layer in enumerate(layers):
        ax.plot(steps, [g[i] for _, g in history], label=f"layer {layer}")
    ax.set_xlabel("search step")
    ax.set_ylabel("gate probability p_l")
    ax.set_ylim(0, 1)
    ax.legend(ncol=2, fontsize=8)
    ax.set_title("SPT gate probabilities during the search")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
