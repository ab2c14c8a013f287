"""The prompt-search job kind: searches, the hybrid and its soft controls, and transfer of a found prompt.

Per (task, seed) a suite of this kind runs each of its ``methods``, one job each:

- ``{label, fixed_prompt: true}``: the task's hand-written prompt, scored on dev and test;
- ``{label, search: STRATEGY, options: {...}}``: :func:`promptlearning.search.runner.run_search`
  under the suite's forward-pass ``budget``, scored on the dev split;
- ``{label, hybrid: STRATEGY, init: ids|vocab|random}``: the search's best prompt turned into a
  soft template and tuned by gradient, the library's recipe
  (:func:`promptlearning.search.hybrid.hybrid_experiment`; ``init: ids`` is the hybrid,
  ``vocab``/``random`` its controls on equal terms);

and ``transfer: {from: TASK, to: [..], strategies: [..]}`` evaluates the prompt a search found
on ``from`` (same seed) on other tasks, beside their own hand-written prompt. A search's
result is kept under the store's ``artifacts/`` so that the hybrid and transfer jobs built
on it reuse it instead of searching again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from promptlearning.bench.jobs import Job, as_list, canonical_json, check_backbone, fail, ints, job_key
from promptlearning.errors import PromptLearningError, UnknownNameError

SUITE_KEYS = ("name", "description", "store", "kind", "report", "backbone", "tasks", "shots", "dev_shots", "seeds",
              "max_test", "max_length", "head", "budget", "batch_size", "train", "methods", "transfer")
METHOD_KEYS = ("label", "fixed_prompt", "search", "options", "hybrid", "init")
TRAIN_KEYS = ("max_steps", "lr", "batch_size", "eval_batch_size")


def _check_tasks(names: list[str], path: Path) -> None:
    from promptlearning.data import get_task

    for name in names:
        try:
            get_task(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"suite {path}: {exc}") from None


def _searches(raw: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    """label -> checked search settings of every ``search:`` entry."""
    from promptlearning.search.base import get_searcher

    out = {}
    for item in as_list(raw.get("methods"), "methods", path):
        if isinstance(item, dict) and item.get("search"):
            try:
                cls = get_searcher(str(item["search"]))
                cls.config_class.from_dict(dict(item.get("options") or {}))
            except PromptLearningError as exc:
                raise type(exc)(f"suite {path}, method {item.get('label')!r}: {exc}") from None
            out[str(item["search"])] = {"strategy": str(item["search"]), "options": dict(item.get("options") or {})}
    return out


def expand(raw: dict[str, Any], path: Path) -> list[Job]:
    from promptlearning.heads.base import HeadConfig

    backbone = check_backbone(raw.get("backbone", "smollm2-135m"), path)
    tasks = [str(t) for t in as_list(raw.get("tasks"), "tasks", path)]
    _check_tasks(tasks, path)
    seeds = ints(raw.get("seeds"), "seeds", path)
    shots, dev_shots = int(raw.get("shots", 16)), raw.get("dev_shots")
    train = {"max_steps": 8, "lr": 0.01, "batch_size": 8, "eval_batch_size": 16, **(raw.get("train") or {})}
    if set(train) - set(TRAIN_KEYS):
        raise fail(path, f"train of a prompt_search suite takes {', '.join(TRAIN_KEYS)}")
    try:
        head = HeadConfig.from_dict({"kind": "verbalizer", **(raw.get("head") or {})}).to_dict()
    except PromptLearningError as exc:
        raise type(exc)(f"suite {path}: {exc}") from None
    common = {"kind": "prompt_search", "backbone": backbone, "head": head, "max_length": int(raw.get("max_length", 64)),
              "budget": int(raw.get("budget", 2000)), "batch_size": int(raw.get("batch_size", 16))}
    searches = _searches(raw, path)
    entries = []
    for item in as_list(raw.get("methods"), "methods", path):
        if not isinstance(item, dict) or "label" not in item or set(item) - set(METHOD_KEYS):
            raise fail(path, f"each method is a mapping of {', '.join(METHOD_KEYS)} with a label (got {item!r})")
        if sum(bool(item.get(k)) for k in ("fixed_prompt", "search", "hybrid")) != 1:
            raise fail(path, f"method {item['label']!r} needs exactly one of fixed_prompt: true, search: or hybrid:")
        if item.get("hybrid") and item["hybrid"] not in searches:
            raise fail(path, f"method {item['label']!r}: hybrid: {item['hybrid']} needs a search: {item['hybrid']} entry")
        entries.append(item)

    def data(task: str, seed: int) -> dict[str, Any]:
        return {"task": task, "shots": shots, "dev_shots": dev_shots, "data_seed": seed, "max_test": raw.get("max_test")}

    jobs = []
    for task in tasks:
        for seed in seeds:
            for item in entries:
                config: dict[str, Any] = {**common, "label": str(item["label"]), "task_name": task,
                                          "data": data(task, seed), "train": {"seed": seed}}
                if item.get("fixed_prompt"):
                    config |= {"role": "fixed_prompt", "method": "fixed_prompt"}
                elif item.get("search"):
                    config |= {"role": "search", "method": str(item["search"]), **searches[str(item["search"])]}
                else:
                    config |= {"role": "hybrid", "method": "p_tuning", "init": str(item.get("init", "ids")),
                               "from": searches[str(item["hybrid"])], "train": {"seed": seed, **train}}
                jobs.append(Job(job_key(config), config["label"], config))
    transfer = raw.get("transfer")
    if transfer:
        if not isinstance(transfer, dict) or set(transfer) - {"from", "to", "strategies"}:
            raise fail(path, "transfer is a mapping {from: TASK, to: [TASKS], strategies: [SEARCHES]}")
        source, targets = str(transfer.get("from", tasks[0])), [str(t) for t in as_list(transfer.get("to"), "to", path)]
        _check_tasks(targets, path)
        for seed in seeds:
            for strategy in as_list(transfer.get("strategies", ["evolution"]), "strategies", path):
                if strategy not in searches:
                    raise fail(path, f"transfer strategy {strategy!r} needs a search: {strategy} entry")
                for target in targets:
                    label = f"transfer:{source}>{target}:{strategy}"
                    config = {**common, "label": label, "task_name": target, "role": "transfer",
                              "method": "fixed_prompt", "data": data(target, seed), "train": {"seed": seed},
                              "source": data(source, seed), "from": searches[strategy]}
                    jobs.append(Job(job_key(config), label, config))
    return jobs


# ---------------------------------------------------------------------------- running one job
def _data_config(data: dict[str, Any]) -> Any:
    from promptlearning.data.loading import DataConfig

    return DataConfig(**{k: v for k, v in data.items() if v is not None})


def _search_config(c: dict[str, Any], data: dict[str, Any], workdir: Path) -> Any:
    from promptlearning.heads.base import HeadConfig
    from promptlearning.search.runner import SearchRunConfig

    spec = {k: c[k] for k in ("backbone", "head", "max_length", "budget", "batch_size")} | c.get("from", c) | \
        {"data": data, "seed": c["train"]["seed"]}
    spec = {k: spec[k] for k in ("backbone", "head", "max_length", "budget", "batch_size", "strategy", "options",
                                 "data", "seed")}
    digest = hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]
    return SearchRunConfig(strategy=spec["strategy"], options=dict(spec["options"]), data=_data_config(data),
                           backbone=c["backbone"], head=HeadConfig(**c["head"]), budget=c["budget"],
                           seed=c["train"]["seed"], max_length=c["max_length"], batch_size=c["batch_size"], quiet=True,
                           output_dir=str(workdir / "artifacts" / f"search-{digest}"))


def searched(c: dict[str, Any], data: dict[str, Any], backbone: Any, workdir: Path) -> dict[str, Any]:
    """The row of the search that ``c`` names on ``data`` (run once; later jobs read its kept result)."""
    from promptlearning.search.runner import run_search

    cfg = _search_config(c, data, workdir)
    kept = Path(str(cfg.output_dir)) / "bench_result.json"
    if kept.is_file():
        return dict(json.loads(kept.read_text()))
    journal = Path(str(cfg.output_dir)) / "search_config.json"
    result = run_search(cfg, resume=journal.is_file(), backbone=backbone, log=lambda _: None)
    result.pop("_model")
    row = {"prompt": result["best_prompt"], "template": result["template"], "dev_accuracy": result["dev_accuracy"],
           "test_accuracy": result["test_accuracy"], "forwards": result["forwards"],
           "evaluations": result["evaluations"], "curve": result["curve"], "top": result["top"][:5],
           "wall_seconds": result["wall_seconds"], "converged": result.get("converged", False)}
    tmp = kept.with_suffix(f".{os.getpid()}")
    tmp.write_text(json.dumps(row))
    tmp.replace(kept)
    return row


def _fixed_model(backbone: Any, c: dict[str, Any], task: str, template: str | None = None) -> Any:
    from promptlearning.data import load_task
    from promptlearning.heads.base import HeadConfig
    from promptlearning.model import PromptModel

    data = load_task(task)
    return PromptModel.build(backbone, "fixed_prompt", data.labels, head=HeadConfig(**c["head"]), task=task,
                             max_length=c["max_length"], template=template)


def _split(data: dict[str, Any]) -> Any:
    from promptlearning.data import few_shot_split, load_task

    return few_shot_split(load_task(data["task"]), data["shots"], data["data_seed"], data.get("dev_shots"))


def _test(data: dict[str, Any], split: Any) -> list[Any]:
    from promptlearning.runs.single_task import test_subset

    return list(test_subset(split.test, data["max_test"])) if data.get("max_test") else list(split.test)


def _hybrid(c: dict[str, Any], backbone: Any, workdir: Path) -> dict[str, Any]:
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.single_task import ExperimentConfig, run_experiment
    from promptlearning.search.hybrid import hybrid_experiment
    from promptlearning.training import TrainConfig

    found = searched(c, c["data"], backbone, workdir)
    t = c["train"]
    base = ExperimentConfig(data=_data_config(c["data"]), backbone=c["backbone"], head=HeadConfig(**c["head"]),
                            max_length=c["max_length"],
                            train=TrainConfig(max_steps=t["max_steps"], eval_every=max(1, t["max_steps"] // 2),
                                              lr=t["lr"], batch_size=t["batch_size"],
                                              eval_batch_size=t["eval_batch_size"], seed=t["seed"], quiet=True,
                                              checkpoint_every=0))
    exp = hybrid_experiment(base, found["template"], backbone.tokenizer, c["init"])
    soft = exp.template
    result = run_experiment(exp, backbone=backbone, baseline=False, log=lambda _: None)
    result.pop("_model")
    n_dev = len(_split(c["data"]).dev)
    return {"prompt": soft, "from_prompt": found["template"], "dev_accuracy": result["dev_accuracy"],
            "test_accuracy": result["test_accuracy"],
            "forwards": result["steps"] * t["batch_size"] + len(result["dev_curve"]) * n_dev,
            "forward_backward": result["steps"] * t["batch_size"], "wall_seconds": result["wall_seconds"],
            "dev_curve": [list(p) for p in result["dev_curve"]]}


def execute(job: Job, log: Any = lambda _: None, workdir: Path | None = None) -> dict[str, Any]:
    from promptlearning.backbones import shared_backbone
    from promptlearning.bench.measure import machine_info
    from promptlearning.training.metrics import evaluate

    c = job.config
    workdir = Path(workdir) if workdir is not None else Path("runs") / "bench"
    backbone = shared_backbone(c["backbone"])
    started = time.perf_counter()
    if c["role"] == "fixed_prompt":
        model = _fixed_model(backbone, c, c["data"]["task"])
        split = _split(c["data"])
        row = {"prompt": model.template, "dev_accuracy": evaluate(model, model.encode(split.dev), 16)["accuracy"],
               "test_accuracy": evaluate(model, model.encode(_test(c["data"], split)), 16)["accuracy"], "forwards": 0,
               "wall_seconds": time.perf_counter() - started}
    elif c["role"] == "search":
        row = searched(c, c["data"], backbone, workdir)
    elif c["role"] == "hybrid":
        row = _hybrid(c, backbone, workdir)
    else:  # transfer: the prompt found on the source task, no further search
        found = searched(c, c["source"], backbone, workdir)
        test = _test(c["data"], _split(c["data"]))
        own = _fixed_model(backbone, c, c["data"]["task"])
        model = _fixed_model(backbone, c, c["data"]["task"], template=found["template"])
        row = {"prompt": found["template"], "test_accuracy": evaluate(model, model.encode(test), 16)["accuracy"],
               "handwritten_test_accuracy": evaluate(own, own.encode(test), 16)["accuracy"], "forwards": 0,
               "wall_seconds": time.perf_counter() - started}
    row["load_avg_1m"] = os.getloadavg()[0]
    row["machine"] = machine_info()  # where it ran: what the published table states
    return row

