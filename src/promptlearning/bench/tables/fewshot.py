"""A few-shot results table (``fewshot16_classic.md``, ``smollm2_verbalizer.md``) from an experiment suite's rows.

Methods x tasks of test accuracy (mean ± std over seeds, n per cell), the mean over tasks,
trainable parameters (with their share of the backbone) and seconds per training step, both
medians over the method's runs. Entry options: ``methods`` (the labels to show, in order;
default: every label of the suite), ``title`` and ``notes`` (Markdown paragraphs written after
the table: what the numbers say, kept in the suite so the file still regenerates whole); one
suite can so publish several tables from one store, e.g. the classic methods and the family
methods run under one protocol.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from promptlearning.bench.jobs import default_lr, with_legacy_lr
from promptlearning.bench.kinds import kind_of
from promptlearning.bench.tables import machine_text
from promptlearning.errors import PromptLearningError

OPTIONS = ("methods", "title", "notes")


def _one(values: list[Any]) -> str:
    """A setting the rows share, or all of them when they differ."""
    return "/".join(str(v) for v in dict.fromkeys(values))


def _default_lr(config: dict[str, Any]) -> bool:
    """Whether a run trained at its method's default rate (unset, as rows keyed before jobs carried it)."""
    lr = config["train"].get("lr")
    if lr is None:
        return True
    try:
        return bool(lr == default_lr(config["method"], str(config.get("runner", "promptlearning"))))
    except PromptLearningError:  # a method this version no longer has
        return False


def _describe(m: dict[str, Any]) -> str:
    return (f"{m.get('gpu') or m.get('cpu') or '?'}, {m.get('torch_threads', '?')} CPU threads; torch "
            f"{m.get('torch', '?')}; promptlearning {m.get('promptlearning', '?')}")


def write(rows: list[dict[str, Any]], out: Path, entry: dict[str, Any], suite: str) -> list[Path]:
    mine = [r for r in rows if r["suite"] == suite and kind_of(r["config"]) in ("experiment", "peft") and r["result"]]
    order = [str(m) for m in entry.get("methods") or dict.fromkeys(r["label"] for r in mine)]
    mine = [r for r in mine if r["label"] in order]
    if not mine:
        out.write_text(f"# {suite}: no runs of {', '.join(order) or 'any method'} in this store yet\n")
        return [out]
    # a row stored before jobs carried their rate ran at the default of its day, which may have moved since
    configs = [with_legacy_lr(r["config"]) for r in mine]
    tasks = list(dict.fromkeys(r["task"] for r in mine))
    methods = [m for m in order if any(r["label"] == m for r in mine)]
    lrs = {c["train"].get("lr") for c in configs}
    lr = ("the method's default learning rate" if all(map(_default_lr, configs))
          else f"learning rate {_one(sorted(lrs, key=str))}")
    command = str(entry.get("produced_by") or f"promptlearning bench benchmarks/suites/{suite}.yaml")
    lines = [f"# {entry.get('title') or suite} ({_one([c['data']['shots'] for c in configs])} shots per class, "
             f"{_one([c['backbone'] for c in configs])})", "",
             f"Test accuracy, mean ± std over the LM-BFF data seeds (n per cell in brackets); "
             f"{_one([c['train']['max_steps'] for c in configs])} steps, batch "
             f"{_one([c['train']['batch_size'] for c in configs])}, {lr}, best-on-dev checkpoint.", "",
             f"Machine: {machine_text(mine, entry, _describe)}.", "",
             f"Command: `{command}`", "",
             "| method | " + " | ".join(tasks) + " | mean | trainable params | s/step |",
             "|---|" + "---:|" * (len(tasks) + 3)]
    for m in methods:
        cells, means = [], []
        for t in tasks:
            acc = [r["result"]["test_accuracy"] for r in mine if r["label"] == m and r["task"] == t]
            if acc:
                sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
                cells.append(f"{100 * statistics.mean(acc):.1f} ± {100 * sd:.1f} ({len(acc)})")
                means.append(statistics.mean(acc))
            else:
                cells.append("–")
        results = [r["result"] for r in mine if r["label"] == m]
        params = statistics.median(r["trainable_params"] for r in results)
        share = statistics.median(r["trainable_share"] for r in results)
        sps = statistics.median(r["seconds_per_step"] for r in results)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {100 * statistics.mean(means):.1f} | "
                     f"{int(params):,} ({_percent(share)}) | {sps:.3f} |")
    notes = entry.get("notes") or []
    for note in [notes] if isinstance(notes, str) else notes:
        lines += ["", str(note).rstrip("\n")]
    out.write_text("\n".join(lines) + "\n")
    return [out]


def _percent(share: float) -> str:
    """A trainable share as a percentage; below 0.01 % with two significant digits, so a prompt on a
    0.5B backbone (0.003 %) does not read as nothing trained."""
    if 0 < share < 1e-4:
        return f"{100 * share:.2g}%"
    return f"{100 * share:.2f}%"
