"""Why SPT's gates stay near 0.5 on all-mpnet-base-v2: every search step's gates and gate gradients.

Reads the done SPT search rows of the mpnet_spt suite that carry a per-step ``gate_trace`` (the
search records it since this script was written) and prints, per row:

* the gate learning rate and search length, the search's best-on-dev step (whose gates choose the
  layers: the trainer restores the best dev step's weights, gates included) and the supernet's dev
  curve;
* the spread of the gates (largest |logit|, range of p) at the last step and at the kept step, and
  the top-K at both;
* how consistent the gate gradient is: per gate, the share of steps whose gradient has the sign of
  the gate's mean gradient, and z = mean / (std / sqrt(steps)); a gate whose |z| stays under 2 is
  pushed by noise, not by the data;
* the test accuracy after retraining the chosen layers.

and draws each row's trajectories (mpnet_spt_gate_trace.png).

    python benchmarks/mpnet_spt_gate_trace.py [--store benchmarks/results/mpnet16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from promptlearning.bench.store import ResultStore

HERE = Path(__file__).resolve().parent


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def top(gates: list[float], k: int) -> list[int]:
    order = sorted(range(len(gates)), key=lambda i: (-gates[i], i))[:k]
    return sorted(order)


def from_store_row(row: dict[str, Any]) -> dict[str, Any]:
    """The fields summarise() reads, from a bench row (search, then retraining)."""
    result, search = row["result"], row["config"].get("search") or {}
    return {"task": row["task"], "label": row["label"], "seed": row["seed"], "arch_lr": search.get("arch_lr"),
            "budget": search.get("budget", 4), "val_fraction": search.get("val_fraction", 0.5), **result}


def from_search_only(run: dict[str, Any]) -> dict[str, Any]:
    """The same, from a line of benchmarks/spt_search_only.py (no retraining, so no accuracy)."""
    label = f"search only (split seed {run['seed']}, data seed {run['data_seed']})"
    return {**run, "label": label}


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    trace = run["gate_trace"]
    k = int(run.get("budget") or 4)
    last = trace[-1]["gates"]
    kept = run["final_gates"]
    grads = [t["grad"] for t in trace]
    n = len(grads)
    per_gate = []
    for i in range(len(last)):
        g = [step[i] for step in grads]
        mean = sum(g) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in g) / max(1, n - 1))
        agree = sum(1 for x in g if x * mean > 0) / n
        z = mean / (std / math.sqrt(n)) if std > 0 else 0.0
        per_gate.append({"mean_grad": mean, "std_grad": std, "sign_agreement": agree, "z": z})
    return {
        "task": run["task"], "label": run["label"], "seed": run["seed"], "arch_lr": run["arch_lr"],
        "val_fraction": run.get("val_fraction"), "search_steps": n, "search_best_step": run.get("search_best_step"),
        "search_dev_curve": run.get("search_dev_curve"),
        "last_gates": last, "kept_gates": kept,
        "last_max_abs_logit": max(abs(logit(p)) for p in last),
        "kept_max_abs_logit": max(abs(logit(p)) for p in kept),
        "last_range": [min(last), max(last)], "kept_range": [min(kept), max(kept)],
        "top_k_last": top(last, k), "chosen_layers": run.get("chosen_layers"),
        "gates_with_abs_z_over_2": sum(1 for g in per_gate if abs(g["z"]) > 2),
        "mean_sign_agreement": sum(g["sign_agreement"] for g in per_gate) / len(per_gate),
        "per_gate": per_gate, "test_accuracy": run.get("test_accuracy"), "dev_accuracy": run.get("dev_accuracy"),
        "trace": [(t["step"], t["gates"]) for t in trace],
    }


def plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cols = min(3, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.6 * nrows), squeeze=False)
    tab10 = plt.get_cmap("tab10")
    colors = [tab10(i) for i in range(10)] + ["black", "magenta"]
    for ax, r in zip(axes.flat, rows, strict=False):
        steps = [s for s, _ in r["trace"]]
        for i in range(len(r["last_gates"])):
            chosen = i in (r["chosen_layers"] or [])
            ax.plot(steps, [g[i] for _, g in r["trace"]], color=colors[i % len(colors)], lw=2.2 if chosen else 0.7,
                    label=f"layer {i}")
        if r["search_best_step"]:
            ax.axvline(r["search_best_step"], color="k", ls=":", lw=1)
        ax.set_ylim(0, 1)
        after = f"test {100 * r['test_accuracy']:.1f}%" if r["test_accuracy"] is not None else "search only"
        ax.set_title(f"{r['task']} seed {r['seed']}, arch_lr {r['arch_lr']}: chose {r['chosen_layers']}\n"
                     f"{after}; thick: chosen, dotted: kept (best-dev) step", fontsize=8)
        ax.set_xlabel("search step", fontsize=8)
        ax.set_ylabel("gate p_l", fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(HERE / "results" / "mpnet16"))
    parser.add_argument("--out", default=str(HERE / "results" / "mpnet_spt_gate_trace.png"))
    parser.add_argument("--search-only", nargs="*", default=[],
                        help="JSON lines of benchmarks/spt_search_only.py to summarise too")
    parser.add_argument("--json", default=None, help="also write the summaries (without traces) here")
    args = parser.parse_args()
    rows = []
    with ResultStore(args.store) as store:
        for row in store.rows("done"):
            if row["suite"] == "mpnet_spt" and row["result"] and row["result"].get("gate_trace"):
                rows.append(summarise(from_store_row(row)))
    for path in args.search_only:
        rows += [summarise(from_search_only(json.loads(line))) for line in Path(path).read_text().splitlines() if line]
    rows.sort(key=lambda r: (r["task"], r["seed"], r["arch_lr"] or 0, r["search_steps"]))
    for r in rows:
        print(f"{r['task']} seed {r['seed']} {r['label']} (arch_lr {r['arch_lr']}, {r['search_steps']} steps): "
              f"kept step {r['search_best_step']} of {r['search_steps']}, search dev {r['search_dev_curve']}")
        print(f"  last step: p in [{r['last_range'][0]:.2f}, {r['last_range'][1]:.2f}], max |logit| "
              f"{r['last_max_abs_logit']:.2f}, top-K {r['top_k_last']}")
        print(f"  kept step: p in [{r['kept_range'][0]:.2f}, {r['kept_range'][1]:.2f}], max |logit| "
              f"{r['kept_max_abs_logit']:.2f}, chosen {r['chosen_layers']}")
        print(f"  gate gradients: {r['gates_with_abs_z_over_2']} of {len(r['per_gate'])} gates with |z| > 2; "
              f"mean sign agreement {r['mean_sign_agreement']:.2f}; z per layer "
              + ", ".join(f"{g['z']:+.1f}" for g in r["per_gate"]))
        if r["test_accuracy"] is not None:
            print(f"  test accuracy after retraining {100 * r['test_accuracy']:.1f}% (dev {100 * r['dev_accuracy']:.1f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "trace"} for r in rows],
                                              indent=1) + "\n")
    written = plot(rows, Path(args.out)) if rows else None
    print(f"wrote {written}" if written else "no figure (no traced rows, or matplotlib missing)")


if __name__ == "__main__":
    main()
