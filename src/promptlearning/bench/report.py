"""`promptlearning report SUITE_DIR`: the seed's four metrics, from the results store alone.

The report reads only the SQLite store, so it can be rebuilt at any time (mid-sweep too)
and says exactly how many runs each number rests on. Besides ``report.md`` it rebuilds the
published tables (:mod:`promptlearning.bench.tables`) that the store's suites list under
``report:``; given a suite file instead of a directory, it builds that suite's store. Tables give mean ± std over seeds,
per task and averaged, best in bold; figures are PNGs beside ``report.md``.

The averaged column is the mean over seeds of each seed's average over tasks when every
task has that seed (then its ± is a real spread across seeds); otherwise it is the mean of
the task means, marked with a dagger, and carries no ±.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptlearning.bench import plots
from promptlearning.bench.heldout import heldout_section, is_heldout
from promptlearning.bench.kinds import kind_of
from promptlearning.bench.store import ResultStore, row_identity, store_path, takes_over
from promptlearning.bench.suite import Suite, load_suite
from promptlearning.bench.tables import write_table
from promptlearning.bench.tables.tagging import tagging_section
from promptlearning.errors import ConfigError

FIXED_PROMPT = "fixed_prompt"
FINETUNE = "finetune"
#: ours -> the closest PEFT method, for the side-by-side table
PEFT_PAIRS = (("prompt_tuning", "peft:prompt_tuning"), ("prefix_tuning", "peft:prefix_tuning"),
              ("p_tuning_v2", "peft:prefix_tuning"), ("p_tuning", "peft:p_tuning"))


@dataclass
class Run:
    label: str
    method: str
    task: str
    shots: int
    seed: int
    backbone: str
    result: dict[str, Any]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


class Grid:
    """Done runs of one backbone and K, indexed task -> label -> seed -> result."""

    def __init__(self, runs: list[Run], failed: list[Run] | None = None) -> None:
        """``failed`` runs only add rows and columns (a method that always failed still shows)."""
        failed = failed or []
        self.tasks = list(dict.fromkeys(r.task for r in [*runs, *failed]))
        self.labels = list(dict.fromkeys(r.label for r in [*runs, *failed]))
        self.methods = {r.label: r.method for r in [*runs, *failed]}
        self.cells: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
        for r in runs:
            self.cells[r.task][r.label][r.seed] = r.result

    def values(self, task: str, label: str, key: str) -> dict[int, float]:
        return {s: float(res[key]) for s, res in self.cells[task][label].items() if res.get(key) is not None}

    def average(self, label: str, key: str) -> tuple[float, float | None, bool] | None:
        """(mean, std, over complete seeds?) of the per-seed average over tasks."""
        per_task = [self.values(t, label, key) for t in self.tasks]
        if not per_task or not all(per_task):
            return None
        seeds = set.intersection(*(set(v) for v in per_task))
        if seeds:
            mean, std = _mean_std([statistics.mean(v[s] for v in per_task) for s in sorted(seeds)])
            return mean, (std if len(seeds) > 1 else None), True
        return statistics.mean(statistics.mean(v.values()) for v in per_task), None, False

    def runs_of(self, label: str) -> list[dict[str, Any]]:
        return [res for t in self.tasks for res in self.cells[t][label].values()]


def _table(grid: Grid, key: str, failures: dict[tuple[str, str], int]) -> list[str]:
    """Methods x tasks (+ average) of ``key`` as mean ± std; the best mean per column in bold."""
    header = "| method | " + " | ".join(grid.tasks) + " | average |"
    lines = [header, "|---|" + "---:|" * (len(grid.tasks) + 1)]
    columns: dict[str, dict[str, tuple[float, str]]] = defaultdict(dict)
    for label in grid.labels:
        for task in grid.tasks:
            vals = list(grid.values(task, label, key).values())
            failed = failures.get((task, label), 0)
            if vals:
                mean, std = _mean_std(vals)
                text = _pct(mean, std if len(vals) > 1 else None) + (f" ({len(vals)})" if len(vals) < _max_n(grid) else "")
                columns[task][label] = (statistics.mean(vals), text + (f" [{failed} failed]" if failed else ""))
            else:
                columns[task][label] = (float("-inf"), f"failed ({failed})" if failed else "–")
        avg = grid.average(label, key)
        if avg is None:
            columns["average"][label] = (float("-inf"), "–")
        else:
            columns["average"][label] = (avg[0], _pct(avg[0], avg[1]) if avg[2] else _pct(avg[0]) + " †")
    best = {col: max(v[0] for v in cells.values()) for col, cells in columns.items()}
    for label in grid.labels:
        row = []
        for col in [*grid.tasks, "average"]:
            mean, text = columns[col][label]
            row.append(f"**{text}**" if mean == best[col] and mean > float("-inf") else text)
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return lines


def _max_n(grid: Grid) -> int:
    return max((len(grid.cells[t][m]) for t in grid.tasks for m in grid.labels), default=0)


def _effectiveness(grid: Grid) -> list[str]:
    fixed = [lab for lab in grid.labels if grid.methods[lab] == FIXED_PROMPT]
    if not fixed:
        return ["No `fixed_prompt` runs in this suite (arrives with the verbaliser issue), so no gain over the "
                "hand-written prompt can be computed yet."]
    ref = fixed[0]
    lines = [f"Test-accuracy gain over `{ref}` in points, paired by seed (mean ± std over seeds).", "",
             "| method | " + " | ".join(grid.tasks) + " | average |", "|---|" + "---:|" * (len(grid.tasks) + 1)]
    for label in (lab for lab in grid.labels if lab != ref):
        cells, means = [], []
        for task in grid.tasks:
            ours, base = grid.values(task, label, "test_accuracy"), grid.values(task, ref, "test_accuracy")
            diffs = [ours[s] - base[s] for s in sorted(set(ours) & set(base))]
            if diffs:
                m, s = _mean_std(diffs)
                means.append(m)
                cells.append(f"{100 * m:+.1f} ± {100 * s:.1f}")
            else:
                cells.append("–")
        avg = f"{100 * statistics.mean(means):+.1f}" if means else "–"
        if means and len(means) < len(grid.tasks):  # an average over fewer tasks is not comparable to the others
            avg += f" ({len(means)} of {len(grid.tasks)} tasks)"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {avg} |")
    return lines


def steps_to_reach(curve: list[list[float]], share: float) -> float | None:
    """First evaluated step whose dev accuracy reaches ``share`` of the curve's best."""
    if not curve:
        return None
    best = max(acc for _, acc in curve)
    return next((float(step) for step, acc in curve if acc >= share * best - 1e-12), None)


def _convergence(grid: Grid) -> list[str]:
    lines = ["Steps (and training examples = steps × batch size) until the dev accuracy first reaches 90% and 100% "
             "of the run's best dev accuracy, mean ± std over tasks and seeds; the dev set is evaluated every "
             "`eval_every` steps, so a value is an upper bound at that granularity.", "",
             "| method | best dev acc | steps to 90% | steps to 100% | examples to 90% | examples to 100% | eval every |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label in grid.labels:
        runs = [r for r in grid.runs_of(label) if r.get("dev_curve")]
        if not runs:
            lines.append(f"| {label} | – | – | – | – | – | – |")
            continue
        cols = []
        for share in (0.9, 1.0):
            steps = [s for r in runs if (s := steps_to_reach(r["dev_curve"], share)) is not None]
            examples = [s * r["batch_size"] for r in runs if (s := steps_to_reach(r["dev_curve"], share)) is not None]
            cols.append((_mean_std(steps), _mean_std(examples)))
        best = _mean_std([max(a for _, a in r["dev_curve"]) for r in runs])
        every = sorted({int(r["dev_curve"][0][0]) for r in runs})
        (s90, e90), (s100, e100) = cols
        lines.append(f"| {label} | {_pct(*best)} | {s90[0]:.0f} ± {s90[1]:.0f} | {s100[0]:.0f} ± {s100[1]:.0f} | "
                     f"{e90[0]:.0f} ± {e90[1]:.0f} | {e100[0]:.0f} ± {e100[1]:.0f} | {', '.join(map(str, every))} |")
    return lines


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _compute(grid: Grid) -> list[str]:
    ft = next((lab for lab in grid.labels if grid.methods[lab] == FINETUNE), None)
    ref = {k: _median(grid.runs_of(ft), k) for k in ("trainable_params", "seconds_per_step", "peak_memory_mb")} \
        if ft else {}

    def rel(value: float | None, key: str) -> str:
        base = ref.get(key)
        return f" ({value / base:.3g}× ft)" if value is not None and base else ""

    kinds = sorted({str(r.get("peak_memory_kind")) for lab in grid.labels for r in grid.runs_of(lab)})
    lines = ["Medians over runs. Latency: one forward of an eval batch through the model against the bare backbone "
             "`backbone.model(input_ids, attention_mask)` on the same batch (the median of the suite's `latency_repeats` "
             "interleaved repeats, 3 unless set, after a warm-up; – where a suite skipped the timing). "
             f"Peak memory: {'; '.join(kinds)}. "
             + (f"Relative to full fine-tuning (`{ft}`) in brackets." if ft else
                "No `finetune` runs in this suite, so nothing is relative to full fine-tuning."), "",
             "| method | trainable params | share of backbone | s / step | inference latency vs backbone | "
             "latency (ms) | peak memory (MB) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label in grid.labels:
        runs = grid.runs_of(label)
        params, sps = _median(runs, "trainable_params"), _median(runs, "seconds_per_step")
        share, lat = _median(runs, "trainable_share"), _median(runs, "latency_overhead")
        ms, mem = _median(runs, "latency_model_ms"), _median(runs, "peak_memory_mb")
        lines.append(f"| {label} | {params or 0:,.0f}{rel(params, 'trainable_params')} | {100 * (share or 0):.3f}% | "
                     f"{sps or 0:.3f}{rel(sps, 'seconds_per_step')} | {'–' if lat is None else f'{lat:.2f}×'} | "
                     f"{'–' if ms is None else f'{ms:.1f}'} | "
                     f"{mem or 0:,.0f}{rel(mem, 'peak_memory_mb')} |")
    lines += ["", "Step time is not compared with a bare-backbone training step here (the bench does not time one); "
              "see `benchmarks/results/step_time.md` for that floor."]
    return lines


def _peft_section(grid: Grid) -> list[str]:
    pairs = [(o, p) for o, p in PEFT_PAIRS if o in grid.labels and p in grid.labels]
    if not any(grid.methods[lab].startswith("peft:") for lab in grid.labels):
        return []
    lines = ["## Side by side with Hugging Face PEFT", "",
             "PEFT's methods wrap the same backbone (`peft.get_peft_model` as a feature extractor) and train with "
             "our data, head (mean pooling over the input positions), trainer, seeds, prompt length, learning rate, "
             "steps, batch and warm-up schedule. Differences: PEFT drops `token_type_ids` for prompt methods "
             "(all zeros on single-sentence tasks) and lets the backbone number the positions (the same as ours "
             "with right padding); `peft:prefix_tuning` puts key/value prefixes at every layer, while our "
             "`p_tuning_v2` replaces hidden-state prompt positions (our key/value form is `prefix_tuning`); "
             "prompt initialisations are drawn by each library's own code."]
    if pairs:
        lines += ["", "Test accuracy, ours minus PEFT, in points, paired by seed:", "",
                  "| ours vs PEFT | " + " | ".join(grid.tasks) + " |", "|---|" + "---:|" * len(grid.tasks)]
        for ours, theirs in pairs:
            cells = []
            for task in grid.tasks:
                a, b = grid.values(task, ours, "test_accuracy"), grid.values(task, theirs, "test_accuracy")
                diffs = [a[s] - b[s] for s in sorted(set(a) & set(b))]
                cells.append(f"{100 * statistics.mean(diffs):+.1f} ({len(diffs)})" if diffs else "–")
            lines.append(f"| {ours} vs {theirs} | " + " | ".join(cells) + " |")
    return lines + [""]


def _comparable_across_k(runs: list[Run]) -> tuple[list[Run], str]:
    """The runs on the tasks and seeds that every K has, so each K averages the same splits
    (a store may hold every task at K = 16 but only one at the other K), and a line saying which."""
    ks = sorted({r.shots for r in runs})
    tasks = set.intersection(*({r.task for r in runs if r.shots == k} for k in ks))
    seeds = {t: set.intersection(*({r.seed for r in runs if r.shots == k and r.task == t} for k in ks)) for t in tasks}
    kept = [r for r in runs if r.task in tasks and r.seed in seeds[r.task]]
    where = "; ".join(f"{t} (seeds {', '.join(str(x) for x in sorted(seeds[t]))})" for t in sorted(tasks))
    return kept, where


def _shots_series(runs: list[Run]) -> plots.Series:
    series: plots.Series = defaultdict(list)
    for k in sorted({r.shots for r in runs}):
        grid = Grid([r for r in runs if r.shots == k])
        for label in grid.labels:
            avg = grid.average(label, "test_accuracy")
            if avg is not None:
                series[label].append((float(k), avg[0], avg[1] or 0.0))
    return dict(series)


def _curve_series(grid: Grid) -> dict[str, plots.Series]:
    out: dict[str, plots.Series] = {}
    for task in grid.tasks:
        out[task] = {}
        for label in grid.labels:
            by_step: dict[float, list[float]] = defaultdict(list)
            for res in grid.cells[task][label].values():
                for step, acc in res.get("dev_curve") or []:
                    by_step[float(step)].append(float(acc))
            if by_step:
                out[task][label] = [(s, *_mean_std(v)) for s, v in sorted(by_step.items())]
    return out


def _machine_lines(meta: dict[str, Any], runs: list[Run], report_command: str) -> list[str]:
    m = meta.get("machine", {})
    threads = sorted({str((r.result.get("machine") or {}).get("torch_threads")) for r in runs}) or ["?"]
    where = f"GPU {m['gpu']}" if m.get("gpu") else (f"CPU {m.get('cpu')} ({m.get('cpu_cores')} cores, "
                                                    f"{'/'.join(threads)} torch thread(s) per worker)")
    if not m:  # a store filled only by record_done (held-out rows): no bench ever ran here
        where = "not recorded (no `promptlearning bench` ran on this store)"
    loads = [float(r.result["load_avg_1m"]) for r in runs if r.result.get("load_avg_1m") is not None]
    if loads:
        where += (f"; 1-minute load average when runs ended: median {statistics.median(loads):.1f}, "
                  f"max {max(loads):.1f} (above the core count, other work slowed every timing)"
                  if max(loads) > (m.get("cpu_cores") or 1) else
                  f"; 1-minute load average when runs ended: median {statistics.median(loads):.1f}")
    hosts = {(r.result.get("machine") or {}).get("cpu") for r in runs}
    versions = ", ".join(f"{k} {m[k]}" for k in ("torch", "transformers", "promptlearning", "peft", "python")
                         if m.get(k))
    lines = [f"- Machine: {where}" + (f"; rows come from {len(hosts)} machine kinds" if len(hosts) > 1 else ""),
             f"- Versions: {versions}", "- Commands:"]
    lines += [f"  - `{c}`" for c in meta.get("commands", [])] + [f"  - `{report_command}`"]
    return lines


def _shown(path: Path) -> str:
    """A path relative to the working directory when it lies below it (reports get published)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def published_tables(rows: list[dict[str, Any]], meta: dict[str, Any], only: Any = None) -> list[Path]:
    """Rebuild the tables every suite recorded in this store lists under ``report:`` (``only``: one suite).

    A suite's entry records its file as given when it ran; the file as it is now says which
    tables to build, and a suite whose file is not found from here is skipped (run the report
    from the directory the bench ran in)."""
    done = [r for r in rows if r["status"] == "done" and r["result"]]
    written: list[Path] = []
    suites = [only] if only is not None else [
        load_suite(entry["file"]) for entry in meta.get("suites", {}).values() if Path(entry.get("file", "")).is_file()]
    for suite in suites:
        for item in suite.raw.get("report") or []:
            written += write_table(item, claimed_by(suite, done), suite.path, suite.name)
    return written


def claimed_by(suite: Suite, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with the suite's own jobs' rows marked as its own, under the labels it gives them.

    A row two suites share (fine-tuning under two tables of one store) is stored under the suite
    that registered it first; without this the other suite's tables would leave it out. A row stored
    before the code gained a config field is found too (the one ``bench`` would take over), so a table
    does not lose rows until the next sweep re-keys them."""
    labels = {job.key: job.label for job in suite.jobs}
    known = {r["key"] for r in rows}
    by_identity: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["key"] not in labels:
            by_identity[row_identity(r["task"], r["config"])].append(r)
    for job in suite.jobs:  # a row still under the key it had before a field was added: the job's all the same
        if job.key in known:
            continue
        row = next((r for r in by_identity[row_identity(job.task, job.config)] if takes_over(job, r["config"])), None)
        if row is not None:
            labels[row["key"]] = job.label
    return [dict(r, suite=suite.name, label=labels[r["key"]]) if r["key"] in labels else r for r in rows]


def build_report(directory: str | Path, *, command: str | None = None) -> Path:
    """Write ``report.md`` and its PNGs into the store's directory, and the published tables of its
    suites; returns the report path. ``directory`` may be a suite file: its store and tables."""
    suite = None
    if Path(directory).suffix in (".yaml", ".yml"):
        suite = load_suite(directory)
        directory = suite.store or Path("runs") / "bench" / suite.name
    path = store_path(directory)
    if not path.is_file():
        raise ConfigError(f"no results store at {path}; run `promptlearning bench SUITE.yaml --store {path.parent}` "
                          "first")
    with ResultStore(path, create=False) as store:
        rows, meta, counts = store.rows(), store.meta(), store.counts()
        store.checkpoint()
    tables = published_tables(rows, meta, suite)
    # held-out-task rows feed section 2 only; other kinds (prompt search) only their published tables
    heldout = [r for r in rows if is_heldout(r["config"]) and r["status"] == "done" and r["result"]]
    tagging = [r for r in rows if kind_of(r["config"]) == "tagging" and r["status"] == "done" and r["result"]]
    tagging_failed = [r for r in rows if kind_of(r["config"]) == "tagging" and r["status"] == "failed"]
    rows = [r for r in rows if kind_of(r["config"]) in ("experiment", "peft")]
    runs = [Run(r["label"], r["method"], r["task"], r["shots"], r["seed"], r["backbone"], r["result"])
            for r in rows if r["status"] == "done" and r["result"]]
    failed_runs = [Run(r["label"], r["method"], r["task"], r["shots"], r["seed"], r["backbone"], {})
                   for r in rows if r["status"] == "failed"]
    if not runs and not heldout and not tagging and tables:  # a store of published tables only (e.g. prompt search)
        return tables[0]
    if not runs and not heldout and not tagging:
        raise ConfigError(f"{path} has no finished runs yet ({counts['pending']} pending, {counts['failed']} failed); "
                          "run `promptlearning bench` first")
    failed = [r for r in rows if r["status"] == "failed"] + tagging_failed
    out_dir = path.parent
    can_plot = importlib.util.find_spec("matplotlib") is not None
    suite = meta.get("suite", {})
    lines = [f"# Benchmark report: {suite.get('name', out_dir.name)}", ""]
    if suite.get("description"):
        lines += [suite["description"], ""]
    for other in meta.get("suites", {}).values():
        if other.get("name") != suite.get("name") and other.get("description"):
            lines += [f"Also in this store, suite `{other['name']}`: {other['description']}", ""]
    lines += [f"Generated {time.strftime('%Y-%m-%d %H:%M')} from `{path.name}`: {counts['done']} runs done, "
              f"{counts['failed']} failed, {counts['pending'] + counts['running']} not run yet"
              + (f" ({len(heldout)} of the done rows are held-out-task evaluations, section 2 only)" if heldout else "")
              + ". Accuracies in %, "
              "mean ± std over seeds, number of seeds in brackets when a cell has fewer than the others; "
              "best mean per column in bold.", ""]
    timed = runs + [Run(r["label"], r["method"], r["task"], r["shots"], r["seed"], r["backbone"], r["result"])
                    for r in tagging]
    lines += _machine_lines(meta, timed, command or f"promptlearning report {_shown(out_dir)}") + [""]
    backbones = list(dict.fromkeys([*(r.backbone for r in runs), *(r["backbone"] for r in heldout)]))
    fails: dict[tuple[str, str, int, str], int] = defaultdict(int)
    for r in failed:
        fails[(r["task"], r["label"], r["shots"], r["backbone"])] += 1
    for backbone in backbones:
        mine = [r for r in runs if r.backbone == backbone]
        generalisation = heldout_section([r for r in heldout if r["backbone"] == backbone],
                                         backbone if len(backbones) > 1 else None)
        if not mine:
            lines += generalisation
            continue
        several = len({r.backbone for r in runs}) > 1
        suffix = "_" + "".join(c if c.isalnum() else "_" for c in backbone) if several else ""
        shots = sorted({r.shots for r in mine})
        for k in shots:
            grid = Grid([r for r in mine if r.shots == k],
                        [r for r in failed_runs if r.shots == k and r.backbone == backbone])
            cell_fails = {(t, lab): n for (t, lab, kk, b), n in fails.items() if kk == k and b == backbone}
            lines += [f"## Results: {backbone}, K = {k}", "", "Test accuracy:", "", *_table(grid, "test_accuracy",
                      cell_fails), "", "Test macro-F1:", "", *_table(grid, "test_macro_f1", cell_fails), "",
                      "Dev accuracy (best-on-dev checkpoint):", "", *_table(grid, "dev_accuracy", cell_fails), ""]
        main_k = max(shots, key=lambda k: (sum(r.shots == k for r in mine), k))  # the K most runs share
        main = Grid([r for r in mine if r.shots == main_k])
        lines += [f"## 1. Prompt effectiveness ({backbone}, K = {main_k})", "", *_effectiveness(main), "",
                  *generalisation, f"## 3. Convergence speed ({backbone}, K = {main_k})", "", *_convergence(main), ""]
        if not can_plot:
            lines += ["(No plots: matplotlib is not installed; `pip install 'promptlearning[plots]'`.)", ""]
        else:
            curve_png = plots.dev_curves(_curve_series(main), out_dir / f"dev_curves{suffix}.png",
                                         f"dev accuracy during training, K = {main_k}")
            lines += [f"![dev curves]({curve_png.name})", ""]
        if len(shots) > 1:
            comparable, where = _comparable_across_k(mine)
            series = _shots_series(comparable)
            lines += [f"Test accuracy against K, on the tasks and seeds every K has: {where or 'none'} (average "
                      "over those tasks, mean ± std over seeds):", "",
                      "| method | " + " | ".join(f"K = {k}" for k in shots) + " |", "|---|" + "---:|" * len(shots)]
            for label, by_k in series.items():
                at = {int(k): (m, sd) for k, m, sd in by_k}
                lines.append(f"| {label} | " + " | ".join(_pct(*at[k]) if k in at else "–" for k in shots) + " |")
            lines.append("")
            if can_plot:
                png = plots.accuracy_vs_shots(series, out_dir / f"accuracy_vs_shots{suffix}.png",
                                              f"test accuracy vs K ({backbone})")
                lines += [f"![accuracy vs shots]({png.name})", ""]
        lines += [f"## 4. Compute overhead ({backbone}, K = {main_k})", "", *_compute(main), ""]
        points = [(lab, _median(main.runs_of(lab), "trainable_params") or 1.0, avg[0])
                  for lab in main.labels if (avg := main.average(lab, "test_accuracy")) is not None]
        if points and can_plot:
            png = plots.accuracy_vs_parameters(points, out_dir / f"accuracy_vs_params{suffix}.png",
                                               f"accuracy vs trainable parameters, K = {main_k}")
            lines += [f"![accuracy vs trainable parameters]({png.name})", ""]
        lines += _peft_section(main)
    if tagging:
        lines += ["# Token labelling", "", f"{len(tagging)} tagging runs: word accuracy and macro-F1 over tags, % mean "
                  "± std over seeds (n), on each run's own test set and its cross-domain ones.", "",
                  *tagging_section(tagging)]
    if failed:
        lines += ["## Failed runs", "", "| method | task | K | seeds | error |", "|---|---|---:|---|---|"]
        grouped: dict[tuple[str, str, int, str], list[int]] = defaultdict(list)
        for r in failed:
            grouped[(r["label"], r["task"], r["shots"], str(r["error"]))].append(r["seed"])
        for (label, task, k, error), seeds in grouped.items():
            lines.append(f"| {label} | {task} | {k} | {', '.join(map(str, sorted(seeds)))} | "
                         f"{error.replace('|', '/')} |")
        lines.append("")
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report
