"""Cross-task methods on tasks held out of training (leave-one-task-out) and across domains.

For each held-out task and seed: every cross-task method is trained on all the other
registered tasks, then adapted to the held-out task at K = 0 (description or shared prompt
only), 4, 8 and 16 examples per class. Beside them on the same task and split: the fixed
hand-written prompt (K = 0) and single-task prompt tuning at the same K, all with the
label-description head, so the only difference is how the prompt was obtained.

    python benchmarks/meta_loto.py --heldout cr,subj --seeds 13 --out benchmarks/results/meta_loto
    python benchmarks/meta_loto.py --cross-domain --seeds 13 --out benchmarks/results/meta_cross_domain

Results are appended to OUT.jsonl (a rerun skips rows already there) and summarised in OUT.md.
With --store DIR every row is also recorded in that results store (suite meta_loto, or
meta_cross_domain), where `promptlearning report DIR` shows it as metric 2; rows already in
OUT.jsonl are imported too, and --report-only --store DIR imports them without training
(pass the flags the rows were run with, as OUT.md's "Command" line gives them: the settings
go into each row's config, the command into the store's list of commands):

    python benchmarks/meta_loto.py --heldout cr,subj,tweets,hedge --seeds 13,21 --steps 100 --adapt-steps 30 \
        --single-steps 100 --max-test 300 --out benchmarks/results/meta_loto --report-only --store DIR
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from promptlearning.bench.heldout import HELDOUT
from promptlearning.bench.heldout import SENTIMENT_TASKS as SENTIMENT
from promptlearning.bench.store import ResultStore
from promptlearning.data import few_shot_split, list_tasks, load_task
from promptlearning.data.prompts import handwritten_template
from promptlearning.data.task_info import TaskInfo, cosine_ranking, task_representation
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.runs.multitask import adapt_to_task, run_multitask, task_info
from promptlearning.runs.single_task import ExperimentConfig, shared_backbone, test_subset
from promptlearning.training import TrainConfig, Trainer
from promptlearning.training.meta_learning import MetaConfig
from promptlearning.training.metrics import evaluate

BACKBONE = "minilm-l6"
HEAD = HeadConfig(kind="label_description")
CROSS_TASK = {
    "multitask_prompt": {"method": "multitask_prompt", "method_options": {"num_tokens": 20}},
    "hyperprompt": {"method": "hyperprompt", "method_options": {"num_tokens": 20, "task_repr": "description"}},
    "meta_init_reptile": {"method": "prompt_tuning", "method_options": {"num_tokens": 20},
                          "meta": {"meta_algorithm": "reptile", "inner_steps": 3, "inner_lr": 1.0, "tasks_per_step": 1}},
}
#: the single-task prompt of the training task with the nearest description, adapted like the methods above
TRANSFER = "prompt_transfer"


def done_keys(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}


def append(path: Path, row: dict[str, Any], store: ResultStore | None = None,
           args: argparse.Namespace | None = None) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "key"}), flush=True)
    if store is not None and args is not None:
        record(store, row, args)


def store_suite(args: argparse.Namespace) -> str:
    return "meta_cross_domain" if args.cross_domain else "meta_loto"


_ROW_FIELDS = ("key", "plan", "target", "method", "K", "seed", "accuracy", "train_tasks")


def heldout_record(row: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The arguments of ``ResultStore.record_done`` for one OUT.jsonl row: a config that names the
    held-out evaluation and every setting the row was run with, and the row's numbers."""
    name, target, k, seed = row["method"], row["target"], int(row["K"]), row["seed"]
    config: dict[str, Any] = {
        "evaluation": HELDOUT, "protocol": "cross_domain" if args.cross_domain else "leave_one_task_out",
        "heldout_task": target, "label": name, "backbone": BACKBONE, "head": HEAD.kind,
        "data": {"shots": k, "data_seed": seed, "max_test": args.max_test}}
    if name == "fixed_prompt":
        config |= {"method": "fixed_prompt", "template": "handwritten", "train_tasks": [], "train": {"seed": None}}
    elif name == "prompt_tuning_single":
        config |= {"method": "prompt_tuning", "method_options": {"num_tokens": 20}, "train_tasks": [],
                   "train": {"seed": seed, "max_steps": args.single_steps}}
    elif name == TRANSFER:
        config |= {"method": "prompt_tuning", "method_options": {"num_tokens": 20}, "train_tasks": list(row["train_tasks"]),
                   "transfer": {"by": "description", "variant": "init", "source": row["source"]},
                   "train": {"seed": seed, "max_steps": args.single_steps, "train_shots": 16,
                             "adapt_steps": args.adapt_steps}}
    elif name in CROSS_TASK:
        spec = CROSS_TASK[name]
        config |= {"method": spec["method"], "method_options": spec["method_options"], "meta": spec.get("meta"),
                   "train_tasks": list(row["train_tasks"]),
                   "train": {"seed": seed, "max_steps": args.steps, "train_shots": 16, "adapt_steps": args.adapt_steps}}
    else:
        raise ValueError(f"row {row.get('key')!r}: unknown method {name!r}")
    result = {"test_accuracy": row["accuracy"], **{f: v for f, v in row.items() if f not in _ROW_FIELDS},
              "meta_loto_key": row["key"]}
    return {"suite": store_suite(args), "label": name, "task": target, "method": config["method"], "shots": k,
            "seed": seed, "backbone": BACKBONE, "config": config, "result": result}


def record(store: ResultStore, row: dict[str, Any], args: argparse.Namespace) -> str:
    return store.record_done(**heldout_record(row, args))


def import_rows(rows_path: Path, store: ResultStore, args: argparse.Namespace) -> int:
    """Record every row of OUT.jsonl in the store (idempotent); returns how many rows were read."""
    if not rows_path.is_file():
        return 0
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    for row in rows:
        record(store, row, args)
    store.add_to_meta_list("commands", f"python benchmarks/meta_loto.py {' '.join(_argv(args))}")
    return len(rows)


def open_store(args: argparse.Namespace) -> ResultStore | None:
    """The --store results store (None without --store), with OUT.jsonl's rows already in it."""
    if not args.store:
        return None
    store = ResultStore(args.store)
    n = import_rows(Path(args.out).with_suffix(".jsonl"), store, args)
    print(f"{n} rows of {Path(args.out).with_suffix('.jsonl')} recorded in {store.path} (suite {store_suite(args)})")
    return store


def single_task(backbone: Any, task: str, k: int, seed: int, steps: int, max_test: int,
                save_to: Path | None = None) -> dict[str, Any]:
    """Prompt tuning on the held-out task alone, label-description head, same split. With ``save_to``
    the trained prompt is kept there: at K=16 it is this task's source prompt for prompt transfer."""
    data = load_task(task)
    split = few_shot_split(data, k, seed)
    torch.manual_seed(seed)
    model = PromptModel.build(backbone, "prompt_tuning", data.labels, method_options={"num_tokens": 20}, head=HEAD,
                              task=task, tasks=[TaskInfo(task, data.labels, data.description)])
    started = time.perf_counter()
    Trainer(model, TrainConfig(max_steps=steps, eval_every=10, seed=seed, quiet=True),
            model.encode(split.train), model.encode(split.dev)).fit()
    acc = evaluate(model, model.encode(test_subset(split.test, max_test)))["accuracy"]
    if save_to is not None:
        model.save_pretrained(save_to, extra={"task": task, "shots": k, "seed": seed, "test_accuracy": acc})
    return {"accuracy": acc, "seconds": time.perf_counter() - started}


def source_prompt(backbone: Any, task: str, seed: int, args: argparse.Namespace, sources: Path,
                  rows_path: Path | None, done: set[str], store: ResultStore | None) -> PromptModel:
    """``task``'s single-task prompt (K=16, this seed): loaded if kept, else trained and kept. A newly
    trained one is also that task's single-task K=16 row, when the row is not there yet."""
    path = sources / f"{task}-{seed}"
    if not (path / "adapter_config.json").is_file():
        r = single_task(backbone, task, 16, seed, args.single_steps, args.max_test, save_to=path)
        key = f"single|{task}|16|{seed}"
        if rows_path is not None and key not in done:
            append(rows_path, {"key": key, "plan": task, "target": task, "method": "prompt_tuning_single", "K": 16,
                               "seed": seed, "accuracy": r["accuracy"], "seconds": r["seconds"]}, store, args)
            done.add(key)
    return PromptModel.from_pretrained(path, backbone=backbone)


def rank_sources(backbone: Any, target: str, candidates: list[str]) -> list[tuple[str, float]]:
    """Source tasks by cosine similarity of their description encodings to the target's (usable at K=0)."""
    infos = [task_info(load_task(t)) for t in [target, *candidates]]
    reprs = torch.stack([task_representation("description", backbone, info) for info in infos])
    return [(candidates[i], score) for i, score in cosine_ranking(reprs[0], reprs[1:])]


def fixed_prompt(backbone: Any, task: str, max_test: int) -> float:
    data = load_task(task)
    model = PromptModel.build(backbone, "fixed_prompt", data.labels, head=HEAD, task=task,
                              template=handwritten_template(task, data.labels).replace("\n", " "))
    return evaluate(model, model.encode(test_subset(data.test, max_test)))["accuracy"]


def train_cross(name: str, tasks: list[str], seed: int, steps: int, out: Path) -> PromptModel:
    spec = CROSS_TASK[name]
    cfg = ExperimentConfig(method=spec["method"], method_options=dict(spec["method_options"]), tasks=tasks, head=HEAD,
                           train=TrainConfig(max_steps=steps, eval_every=20, seed=seed, quiet=True),
                           meta=MetaConfig(**spec.get("meta", {})), output_dir=str(out))
    cfg.data.shots, cfg.data.data_seed, cfg.data.max_test = 16, seed, 100
    result = run_multitask(cfg, log=lambda *_: None)
    return result["_model"]


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows_path = out.with_suffix(".jsonl")
    done = done_keys(rows_path)
    store = open_store(args)
    try:
        _run(args, out, rows_path, done, store)
    finally:
        if store is not None:
            store.close()
    write_markdown(rows_path, out.with_suffix(".md"), args)


def _run(args: argparse.Namespace, out: Path, rows_path: Path, done: set[str], store: ResultStore | None) -> None:
    backbone = shared_backbone(BACKBONE)
    registered = [t.name for t in list_tasks()]
    if args.cross_domain:
        plans = [("cross_domain", ["mr", "rt"], ["cr", "tweets", "nyt"])]
    else:
        plans = [(h, [t for t in registered if t != h], [h]) for h in args.heldout.split(",")]
    shots = wanted_shots(args)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for plan, train_tasks, targets in plans:
            for target in targets:
                key = f"fixed|{target}"
                if key not in done:
                    append(rows_path, {"key": key, "plan": plan, "target": target, "method": "fixed_prompt", "K": 0,
                                       "seed": None, "accuracy": fixed_prompt(backbone, target, args.max_test)},
                           store, args)
                    done.add(key)
                for k in [k for k in shots if k > 0]:
                    key = f"single|{target}|{k}|{seed}"
                    if key not in done:
                        r = single_task(backbone, target, k, seed, args.single_steps, args.max_test)
                        append(rows_path, {"key": key, "plan": plan, "target": target, "method": "prompt_tuning_single",
                                           "K": k, "seed": seed, "accuracy": r["accuracy"], "seconds": r["seconds"]},
                               store, args)
                        done.add(key)
            for name in CROSS_TASK:
                wanted = [f"{name}|{plan}|{t}|{k}|{seed}" for t in targets for k in shots]
                if all(w in done for w in wanted):
                    continue
                started = time.perf_counter()
                trained = train_cross(name, train_tasks, seed, args.steps, out.parent / "runs" / f"{plan}_{name}_{seed}")
                train_seconds = time.perf_counter() - started
                for target in targets:
                    for k in shots:
                        key = f"{name}|{plan}|{target}|{k}|{seed}"
                        if key in done:
                            continue
                        model = copy.deepcopy(trained)
                        r = adapt_to_task(model, load_task(target), shots=k, seed=seed, steps=args.adapt_steps,
                                          max_test=args.max_test, quiet=True, log=lambda *_: None)
                        append(rows_path, {"key": key, "plan": plan, "target": target, "method": name, "K": k,
                                           "seed": seed, "accuracy": r["after"], "before": r["before"],
                                           "adapt_seconds": r["adapt_seconds"], "train_seconds": train_seconds,
                                           "trainable_params": trained.num_trainable(), "train_tasks": train_tasks},
                               store, args)
                        done.add(key)
            for target in targets:
                transfer(backbone, args, plan, train_tasks, target, seed, shots, out, rows_path, done, store)


def transfer(backbone: Any, args: argparse.Namespace, plan: str, train_tasks: list[str], target: str, seed: int,
             shots: list[int], out: Path, rows_path: Path, done: set[str], store: ResultStore | None) -> None:
    """Prompt transfer: the target starts from the single-task prompt of the training task whose
    description is nearest its own, then adapts exactly like the cross-task methods."""
    keys = {k: f"{TRANSFER}|{plan}|{target}|{k}|{seed}" for k in shots}
    if all(key in done for key in keys.values()):
        return
    source, similarity = rank_sources(backbone, target, train_tasks)[0]
    started = time.perf_counter()
    trained = source_prompt(backbone, source, seed, args, out.parent / "runs" / "loto_sources",
                            None if args.cross_domain else rows_path, done, store)
    source_seconds = time.perf_counter() - started
    for k, key in keys.items():
        if key in done:
            continue
        model = copy.deepcopy(trained)
        r = adapt_to_task(model, load_task(target), shots=k, seed=seed, steps=args.adapt_steps,
                          max_test=args.max_test, quiet=True, log=lambda *_: None)
        append(rows_path, {"key": key, "plan": plan, "target": target, "method": TRANSFER, "K": k, "seed": seed,
                           "accuracy": r["after"], "before": r["before"], "adapt_seconds": r["adapt_seconds"],
                           "source": source, "source_similarity": similarity, "source_seconds": source_seconds,
                           "trainable_params": trained.num_trainable(), "train_tasks": [source]}, store, args)
        done.add(key)


def write_markdown(rows_path: Path, md_path: Path, args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in rows:
        cells[(r["target"], r["method"], r["K"])].append(100 * r["accuracy"])
    seeds_of: dict[str, set[int]] = defaultdict(set)  # the seeds each held-out task was run with
    for r in rows:
        if r["seed"] is not None:
            seeds_of[r["target"]].add(r["seed"])
    store = Path(args.finetune_store)
    if store.is_dir():  # full fine-tuning at K=16 from the fewshot16 bench: same splits, classification head
        from promptlearning.bench.store import ResultStore

        with ResultStore(store) as results:
            for r in results.rows("done"):
                if (r["label"] == "finetune" and r["shots"] == 16 and r["result"]
                        and r["seed"] in seeds_of.get(r["task"], set())):
                    cells[(r["task"], "finetune (classification head)", 16)].append(100 * r["result"]["test_accuracy"])
    targets = sorted({r["target"] for r in rows})
    methods = ["fixed_prompt", "prompt_tuning_single", TRANSFER, *CROSS_TASK, "finetune (classification head)"]
    ks = sorted({r["K"] for r in rows})
    lines = [f"# {'Cross-domain' if args.cross_domain else 'Leave-one-task-out'}: cross-task methods on unseen tasks", "",
             f"Machine: {platform.machine()} CPU, torch {torch.__version__}, one thread, other benchmark processes "
             "running beside it. Backbone MiniLM-L6, label-description head everywhere (no per-task weights).",
             f"Command: `python benchmarks/meta_loto.py {' '.join(_argv(args))}`", "",
             *(["Trained on mr and rt (movie reviews) only; cr, nyt and tweets share their labels but not their "
                "domain.", ""] if args.cross_domain else []),
             f"Cross-task training: {args.steps} steps, batch 8, 16 shots of every training task; adaptation: "
             f"{args.adapt_steps} steps on K shots per class (K=0: no adaptation). Single-task prompt tuning: "
             f"{args.single_steps} steps. Prompt transfer: the single-task prompt (K=16, {args.single_steps} steps, "
             "same seed) of the training task whose description encoding is nearest the held-out task's, adapted "
             "exactly like the cross-task methods. Test: a fixed random subset of "
             f"{args.max_test} examples (fine-tuning rows: the fewshot16 bench's 500-example subset, same seeds). "
             "Accuracy in %, mean ± std over seeds (n = number of seeds). Only the seeds and held-out tasks listed "
             "here were run.", "", *summary(rows, wanted_shots(args), args), ""]
    for target in targets:
        kind = "related (sentiment)" if target in SENTIMENT else "unrelated"
        lines += [f"## {target} ({kind})", "", "| method | " + " | ".join(f"K={k}" for k in ks) + " |",
                  "|---|" + "---:|" * len(ks)]
        for m in methods:
            vals = []
            for k in ks:
                xs = cells.get((target, m, k), [])
                if not xs:
                    vals.append("–")
                else:
                    t = torch.tensor(xs)
                    std = f" ± {t.std().item():.1f}" if len(xs) > 1 else ""
                    vals.append(f"{t.mean().item():.1f}{std} (n={len(xs)})")
            if any(v != "–" for v in vals):
                lines.append(f"| {m} | " + " | ".join(vals) + " |")
        lines.append("")
    md_path.write_text("\n".join(lines) + "\n")
    print(f"wrote {md_path}")


def wanted_shots(args: argparse.Namespace) -> list[int]:
    return [0, 16] if args.cross_domain else [int(k) for k in args.shots.split(",")]


def summary(rows: list[dict[str, Any]], ks: list[int], args: argparse.Namespace) -> list[str]:
    """Coverage, averages over held-out tasks, paired meta-vs-baseline differences and the issue's aim,
    all from the (task, seed) units that have every method at every K, so no average mixes coverage."""
    acc = {(r["target"], r["method"], r["K"], r["seed"]): 100 * r["accuracy"] for r in rows}
    fixed = {r["target"]: 100 * r["accuracy"] for r in rows if r["method"] == "fixed_prompt"}
    compared = [TRANSFER, *CROSS_TASK]
    units = sorted({(r["target"], r["seed"]) for r in rows if r["seed"] is not None})
    complete = [(t, s) for t, s in units if t in fixed
                and all((t, m, k, s) in acc for m in compared for k in ks)
                and all((t, "prompt_tuning_single", k, s) in acc for k in ks if k > 0)]
    if not complete:
        return []
    by_task: dict[str, list[int]] = defaultdict(list)
    for t, s in complete:
        by_task[t].append(s)
    out = ["## Summary", "", "Complete held-out units (task: seeds): "
           + "; ".join(f"{t}: {', '.join(map(str, sorted(ss)))}" for t, ss in sorted(by_task.items()))
           + f" ({len(complete)} units). Every number below is over these units only.", ""]

    def value(method: str, t: str, k: int, s: int) -> float | None:
        if method == "fixed_prompt":
            return fixed[t] if k == 0 else None
        return acc.get((t, method, k, s))

    groups = [("all held-out tasks", complete), ("sentiment (related)", [u for u in complete if u[0] in SENTIMENT]),
              ("subj, hedge (unrelated)", [u for u in complete if u[0] not in SENTIMENT])]
    out += ["### Mean test accuracy over units", "",
            "| method | tasks | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|---|" + "---:|" * len(ks)]
    for name, group in groups:
        if not group:
            continue
        for m in ["fixed_prompt", "prompt_tuning_single", *compared]:
            vals = []
            for k in ks:
                xs = [v for t, s in group if (v := value(m, t, k, s)) is not None]
                vals.append(f"{sum(xs) / len(xs):.1f}" if xs else "–")
            out.append(f"| {m} | {name} ({len(group)}) | " + " | ".join(vals) + " |")
    out += ["", "### Meta methods against plain multi-task training and prompt transfer", "",
            "Paired on the same unit and K: mean difference in points ± std, and how often the meta method is "
            "higher / lower.", "", "| meta method | against | " + " | ".join(f"K={k}" for k in ks) + " |",
            "|---|---|" + "---:|" * len(ks)]
    for meta in ("hyperprompt", "meta_init_reptile"):
        for base in ("multitask_prompt", TRANSFER):
            vals = []
            for k in ks:
                d = [acc[(t, meta, k, s)] - acc[(t, base, k, s)] for t, s in complete]
                t_ = torch.tensor(d)
                std = f" ± {t_.std().item():.1f}" if len(d) > 1 else ""
                vals.append(f"{t_.mean().item():+.1f}{std} ({sum(x > 0 for x in d)}/{sum(x < 0 for x in d)})")
            out.append(f"| {meta} | {base} | " + " | ".join(vals) + " |")
    sentiment = [u for u in complete if u[0] in SENTIMENT]
    if 4 in ks and 16 in ks and sentiment:
        mean4 = {m: sum(acc[(t, m, 4, s)] for t, s in sentiment) / len(sentiment) for m in compared}
        best = max(mean4, key=lambda m: mean4[m])
        out += ["", "### Aim: K=4 cross-task against K=16 single-task on unseen sentiment tasks", "",
                f"The cross-task method with the best mean at K=4 over the sentiment units is **{best}** "
                f"({mean4[best]:.1f}; chosen on these same test numbers, so slightly optimistic). Per task, mean over "
                "its seeds:", "", f"| held-out task | seeds | {best} K=4 | single-task K=16 | difference |",
                "|---|---:|---:|---:|---:|"]
        matched = 0
        for t in sorted({u[0] for u in sentiment}):
            ss = sorted(s for u, s in sentiment if u == t)
            a = sum(acc[(t, best, 4, s)] for s in ss) / len(ss)
            b = sum(acc[(t, "prompt_tuning_single", 16, s)] for s in ss) / len(ss)
            matched += a >= b
            out.append(f"| {t} | {len(ss)} | {a:.1f} | {b:.1f} | {a - b:+.1f} |")
        out += ["", f"Matched or exceeded on {matched} of {len({u[0] for u in sentiment})} sentiment tasks."]
    return out + across_seeds(acc, fixed, complete, ks) + overhead(rows, complete, ks)


def across_seeds(acc: dict[tuple[str, str, int, int], float], fixed: dict[str, float],
                 complete: list[tuple[str, int]], ks: list[int]) -> list[str]:
    """Seed-to-seed spread of the task-averaged accuracy, over the seeds that cover every held-out task
    (a seed missing a task would move its average by the task's difficulty, not by the method)."""
    tasks = sorted({t for t, _ in complete})
    seeds = sorted(s for s in {s for _, s in complete} if all((t, s) in complete for t in tasks))
    if len(seeds) < 2:
        return []
    out = ["", "### Across seeds", "",
           f"Mean over all {len(tasks)} held-out tasks for each seed, then mean ± std over the {len(seeds)} seeds that "
           f"cover every task ({', '.join(map(str, seeds))}).", "",
           "| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for m in ["fixed_prompt", "prompt_tuning_single", TRANSFER, *CROSS_TASK]:
        vals = []
        for k in ks:
            if m == "fixed_prompt":
                per_seed = [sum(fixed[t] for t in tasks) / len(tasks)] if k == 0 else []
            elif m == "prompt_tuning_single" and k == 0:
                per_seed = []
            else:
                per_seed = [sum(acc[(t, m, k, s)] for t in tasks) / len(tasks) for s in seeds]
            if not per_seed:
                vals.append("–")
            elif len(per_seed) == 1:
                vals.append(f"{per_seed[0]:.1f} (no training, same for every seed)")
            else:
                t_ = torch.tensor(per_seed)
                vals.append(f"{t_.mean().item():.1f} ± {t_.std().item():.1f}")
        out.append(f"| {m} | " + " | ".join(vals) + " |")
    return out


def overhead(rows: list[dict[str, Any]], complete: list[tuple[str, int]], ks: list[int]) -> list[str]:
    """What each method costs: trainable parameters, the one-off cross-task training, and the wall time
    to adapt to a new task at each K (medians over the complete units, so one slow run does not dominate)."""
    units = set(complete)
    mine = [r for r in rows if r["seed"] is not None and (r["target"], r["seed"]) in units]

    def median(xs: list[float]) -> str:  # statistics' median: torch's takes the lower middle of an even count
        return f"{statistics.median(xs):.0f}" if xs else "–"

    params = {r["method"]: r["trainable_params"] for r in mine if "trainable_params" in r}
    out = ["", "### Overhead", "",
           "Medians over the complete units, in seconds of wall time on the machine above (two benchmark processes "
           "shared its two cores). Adapting includes the test evaluation after it; single-task prompt tuning trains "
           "from scratch at each K, so its column is its whole cost. Prompt transfer's one-off cost is one single-task K=16 "
           "run (on its source task; the median of those runs is shown).", "",
           "| method | trainable parameters | one-off training s | " + " | ".join(f"adapt K={k} s" for k in ks if k > 0)
           + " |", "|---|---:|---:|" + "---:|" * len([k for k in ks if k > 0])]
    for m in ["prompt_tuning_single", TRANSFER, *CROSS_TASK]:
        count = params.get(m, params.get(TRANSFER) if m == "prompt_tuning_single" else None)
        if m in CROSS_TASK:
            one_off = median([r["train_seconds"] for r in mine if r["method"] == m and r["K"] == 0])
        elif m == TRANSFER:
            one_off = median([r["seconds"] for r in mine if r["method"] == "prompt_tuning_single" and r["K"] == 16])
        else:
            one_off = "–"
        field = "seconds" if m == "prompt_tuning_single" else "adapt_seconds"
        adapt = [median([r[field] for r in mine if r["method"] == m and r["K"] == k and field in r]) for k in ks if k > 0]
        out.append(f"| {m} | {f'{count:,}' if count is not None else '–'} | {one_off} | " + " | ".join(adapt) + " |")
    return out


def _argv(args: argparse.Namespace) -> list[str]:
    out = []
    for k, v in vars(args).items():
        if k == "report_only" or (k == "heldout" and args.cross_domain):
            continue
        if v is True:
            out.append(f"--{k.replace('_', '-')}")
        elif v not in (False, None):
            out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heldout", default="cr,subj", help="held-out tasks, comma-separated")
    p.add_argument("--cross-domain", action="store_true", help="train on mr,rt; test on cr, tweets, nyt")
    p.add_argument("--seeds", default="13")
    p.add_argument("--shots", default="0,4,8,16")
    p.add_argument("--steps", type=int, default=100, help="cross-task training steps")
    p.add_argument("--adapt-steps", type=int, default=30)
    p.add_argument("--single-steps", type=int, default=100)
    p.add_argument("--max-test", type=int, default=300)
    p.add_argument("--out", default="benchmarks/results/meta_loto")
    p.add_argument("--finetune-store", default="benchmarks/results/fewshot16",
                   help="bench store whose finetune runs at K=16 (same splits) join the table")
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite OUT.md from the rows in OUT.jsonl (and, with --store, record them there)")
    p.add_argument("--store", default=None,
                   help="results store directory: also record every row there (suite meta_loto or meta_cross_domain) "
                        "for `promptlearning report DIR`; rows already in OUT.jsonl are imported with the settings "
                        "given here")
    args = p.parse_args()
    if args.report_only:
        store = open_store(args)
        if store is not None:
            store.close()
        write_markdown(Path(args.out).with_suffix(".jsonl"), Path(args.out).with_suffix(".md"), args)
    else:
        run(args)


if __name__ == "__main__":
    main()
