"""The tagging table (``pos_tagging.md``): word accuracy and macro-F1 per method x K, in-domain and cross-domain.

From a tagging suite's rows (:mod:`promptlearning.bench.kinds.tagging`), per backbone and training
task: word accuracy and macro-F1 over tags (mean ± std over seeds, n per cell) on the training
domain's test set and on each cross-domain one; every method's gap to fine-tuning, paired by seed;
and the share of prompt tuning's gap to fine-tuning that each other method closes, the number that
answers P-tuning v2's claim (deep prompts close most of it, input-only prompts do not). Entry
options: ``methods`` (labels in order; default every label), ``title``, ``notes`` (paragraphs
printed under the title, e.g. the protocol's reductions and the conclusion, so the published file
regenerates from the store and the suite alone) and ``suites`` (the suites whose rows it reads,
default its own: e.g. more seeds at one K, run as a second suite on the same store).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from promptlearning.bench.kinds import kind_of
from promptlearning.bench.tables import machine_text

OPTIONS = ("methods", "title", "notes", "suites")
FINETUNE = "finetune"
INPUT_ONLY = "prompt_tuning"
#: smallest gap (accuracy, 0.005 = half a point) between fine-tuning and prompt tuning that a share is taken of
MIN_GAP = 0.005

Cells = dict[tuple[str, int], dict[int, float]]  # (domain, K) -> seed -> value


def _one(values: list[Any]) -> str:
    """A setting the rows share, or all of them when they differ."""
    return "/".join(str(v) for v in dict.fromkeys(values))


def _describe(m: dict[str, Any]) -> str:
    return (f"{m.get('gpu') or m.get('cpu') or '?'}, {m.get('cpu_cores', '?')} cores, {m.get('torch_threads', '?')} "
            f"torch thread(s) per job; torch {m.get('torch', '?')}; promptlearning {m.get('promptlearning', '?')}")


def _cell(values: dict[int, float]) -> str:
    if not values:
        return "–"
    xs = list(values.values())
    sd = f" ± {100 * statistics.stdev(xs):.1f}" if len(xs) > 1 else ""
    return f"{100 * statistics.mean(xs):.1f}{sd} ({len(xs)})"


def _score(result: dict[str, Any], domain: str | None, key: str) -> float | None:
    """``key`` (accuracy or macro_f1) of a row in its own domain (None) or on a cross-domain set."""
    if domain is None:
        value = result.get("test_accuracy" if key == "accuracy" else "test_macro_f1")
    else:
        value = (result.get("cross_domain") or {}).get(domain, {}).get(key)
    return None if value is None else float(value)


def _grid(rows: list[dict[str, Any]], domains: list[str | None], key: str) -> dict[str, Cells]:
    """label -> (domain, K) -> seed -> score."""
    out: dict[str, Cells] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        for d in domains:
            value = _score(r["result"], d, key)
            if value is not None:
                out[r["label"]][(d or "", r["shots"])][r["seed"]] = value
    return out


def _header(columns: list[tuple[str, int]], own: str) -> list[str]:
    names = [f"{d or own} K={k}" for d, k in columns]
    return ["| method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(columns)]


def _paired(a: dict[int, float], b: dict[int, float]) -> list[tuple[float, float]]:
    return [(a[s], b[s]) for s in sorted(set(a) & set(b))]


def _gap_lines(grid: dict[str, Cells], labels: list[str], methods: dict[str, str],
               columns: list[tuple[str, int]], own: str) -> list[str]:
    ft = next((lab for lab in labels if methods[lab] == FINETUNE), None)
    pt = next((lab for lab in labels if methods[lab] == INPUT_ONLY), None)
    if ft is None:
        return ["No fine-tuning runs, so no gap to fine-tuning.", ""]
    lines = [f"### Gap to fine-tuning (`{ft}`), word accuracy in points", "",
             "Method minus fine-tuning, paired by seed (the same K sentences), mean ± std (pairs).", "",
             *_header(columns, own)]
    for lab in (x for x in labels if x != ft):
        cells = []
        for col in columns:
            diffs = [a - b for a, b in _paired(grid[lab][col], grid[ft][col])]
            sd = f" ± {100 * statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
            cells.append(f"{100 * statistics.mean(diffs):+.1f}{sd} ({len(diffs)})" if diffs else "–")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    lines.append("")
    if pt is None:
        return lines + ["No input-only prompt tuning runs, so no share of its gap closed.", ""]
    lines += ["### Share of prompt tuning's gap to fine-tuning that each method closes (%)", "",
              f"(acc(method) − acc(`{pt}`)) / (acc(`{ft}`) − acc(`{pt}`)) on the seed-paired means: 100 % reaches "
              "fine-tuning, 0 % is no better than input-only prompt tuning, above 100 % beats fine-tuning; \"no gap\": "
              "prompt tuning is within half a point of fine-tuning (or above it).", "",
              *_header(columns, own)]
    for lab in (x for x in labels if x not in (ft, pt)):
        cells = []
        for col in columns:
            seeds = set(grid[lab][col]) & set(grid[ft][col]) & set(grid[pt][col])
            if not seeds:
                cells.append("–")
                continue
            m, f, p = (statistics.mean(grid[x][col][s] for s in seeds) for x in (lab, ft, pt))
            # under half a point of gap, a share of it is noise: say so instead of dividing by it
            cells.append(f"{100 * (m - p) / (f - p):.0f} ({len(seeds)})" if f - p >= MIN_GAP else "no gap")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return lines + [""]


def tagging_section(rows: list[dict[str, Any]], entry: dict[str, Any] | None = None) -> list[str]:
    """The tables of done tagging rows, per backbone and training task (no title, no machine line)."""
    entry = entry or {}
    order = [str(m) for m in entry.get("methods") or dict.fromkeys(r["label"] for r in rows)]
    rows = [r for r in rows if r["label"] in order]
    lines: list[str] = []
    for backbone in dict.fromkeys(r["config"]["backbone"] for r in rows):
        for task in dict.fromkeys(r["task"] for r in rows if r["config"]["backbone"] == backbone):
            mine = [r for r in rows if r["config"]["backbone"] == backbone and r["task"] == task]
            labels = [m for m in order if any(r["label"] == m for r in mine)]
            methods = {r["label"]: r["config"]["method"] for r in mine}
            cross = list(dict.fromkeys(d for r in mine for d in (r["result"].get("cross_domain") or {})))
            domains: list[str | None] = [None, *cross]
            ks = sorted({r["shots"] for r in mine})
            columns = [(d or "", k) for d in domains for k in ks]
            lines += [f"## {backbone}, trained on {task}"
                      + (f" (cross-domain: {', '.join(cross)})" if cross else ""), ""]
            for key, name in (("accuracy", "Word accuracy"), ("macro_f1", "Macro-F1 over tags")):
                grid = _grid(mine, domains, key)
                lines += [f"### {name} (%)", "", *_header(columns, task)]
                lines += [f"| {lab} | " + " | ".join(_cell(grid[lab][col]) for col in columns) + " |" for lab in labels]
                if key == "accuracy":
                    majority: Cells = defaultdict(dict)
                    for r in mine:
                        if r["result"].get("majority_test_accuracy") is not None:
                            majority[("", r["shots"])][r["seed"]] = float(r["result"]["majority_test_accuracy"])
                    lines.append("| most frequent training tag | " + " | ".join(
                        _cell(majority[col]) if not col[0] else "–" for col in columns) + " |")
                lines.append("")
            lines += _gap_lines(_grid(mine, domains, "accuracy"), labels, methods, columns, task)
            lines += ["### Cost", "", "Medians over the method's runs (all K).", "",
                      "| method | trainable params | share of backbone | s / step | best step |",
                      "|---|---:|---:|---:|---:|"]
            for lab in labels:
                res = [r["result"] for r in mine if r["label"] == lab]
                med = {k: statistics.median(float(x[k]) for x in res) for k in
                       ("trainable_params", "trainable_share", "seconds_per_step", "best_step")}
                lines.append(f"| {lab} | {int(med['trainable_params']):,} | {100 * med['trainable_share']:.3f}% | "
                             f"{med['seconds_per_step']:.3f} | {med['best_step']:.0f} |")
            lines.append("")
    return lines


def write(rows: list[dict[str, Any]], out: Path, entry: dict[str, Any], suite: str) -> list[Path]:
    """The suite's tagging table (see the module docstring)."""
    suites = [str(s) for s in entry.get("suites") or [suite]]
    mine = [r for r in rows if r["suite"] in suites and kind_of(r["config"]) == "tagging" and r["result"]]
    if not mine:
        out.write_text(f"# {suite}: no tagging runs in this store yet\n")
        return [out]
    configs = [r["config"] for r in mine]
    tests = _one([c["data"].get("max_test") or "all" for c in configs])
    command = str(entry.get("produced_by") or "`, `".join(f"promptlearning bench benchmarks/suites/{s}.yaml"
                                                          for s in suites))
    notes = entry.get("notes") or []
    lines = [f"# {entry.get('title') or suite}", "",
             *[line for note in ([notes] if isinstance(notes, str) else notes) for line in (str(note), "")],
             f"K = training sentences (and as many dev sentences, which pick the best checkpoint); "
             f"{_one([c['train']['max_steps'] for c in configs])} steps, batch "
             f"{_one([c['train']['batch_size'] for c in configs])}, max length {_one([c['max_length'] for c in configs])}"
             f" tokens; each seed draws its own K sentences. Scored on a fixed random {tests} sentences of each fixed test "
             "set (all of a smaller one); cross-domain tags the training tag set lacks count as errors. Mean ± std over seeds (n).", "",
             f"Machine: {machine_text(mine, entry, _describe)}.", "", f"Command: `{command}`", "",
             *tagging_section(mine, entry)]
    out.write_text("\n".join(lines).rstrip("\n") + "\n")
    return [out]
