"""The tagging job kind: one few-shot tagging run, scored in its own domain and in others.

A tagging suite is an experiment suite (tasks x shots x methods x seeds x backbones, the same
method entries, ``train`` and ``head`` settings) whose tasks are tagging tasks (``pos_wsj``, or a
mapping with a ``train_file`` of CoNLL columns or ``word/TAG`` lines); K counts *sentences*. The
head defaults to ``token_classification`` and ``max_length`` to 128 (a cut word is an error).
``cross_domain`` names further test sets the trained tagger is scored on, the same job, so a
row holds both numbers of one model::

    kind: tagging
    tasks: [pos_wsj]
    cross_domain: [pos_oanc]          # registered tagging tasks, or {name, test_file} mappings
    max_test: 300                     # sentences, in-domain and on each cross-domain set

Cross-domain tags the trained tag set lacks (OANC's plain ``"``) are counted wrong and their
words stored apart (``accuracy_known_tags``), as ``evaluate`` does.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import torch

from promptlearning.bench.jobs import Job, as_list, fail, suite_tasks
from promptlearning.bench.kinds import experiment
from promptlearning.bench.measure import machine_info, peak_memory_mb, reset_peak_memory
from promptlearning.errors import PromptLearningError

SUITE_KEYS = (*(k for k in experiment.SUITE_KEYS if k != "latency_repeats"), "cross_domain")  # times no forward
#: what a row keeps of each score dict (the rest is per-word detail no table reads)
KEPT_SCORES = ("accuracy", "macro_f1", "accuracy_known_tags", "unseen_tag_words", "words_cut", "words", "n",
               "scheme", "precision", "recall", "f1")


def _cross_domain(value: Any, path: Path) -> list[dict[str, Any]]:
    """Each further test set as {name, task} (registered) or {name, test_file, test_file_sha256}."""
    if value is None:
        return []
    out = []
    for item in as_list(value, "cross_domain", path):
        if isinstance(item, str):
            entry = suite_tasks([item], path, tagging=True)[0]
            out.append({"name": entry["task_name"], "task": entry["task"]})
        elif isinstance(item, dict) and set(item) <= {"name", "test_file"} and item.get("test_file"):
            entry = suite_tasks([{"train_file": item["test_file"], **({"name": item["name"]} if item.get("name")
                                                                         else {})}], path, tagging=True)[0]
            out.append({"name": entry["task_name"], "test_file": entry["train_file"],
                        "test_file_sha256": entry["train_file_sha256"]})
        else:
            raise fail(path, f"each cross_domain entry is a tagging task name or a mapping {{name, test_file}} "
                             f"(got {item!r})")
    return out


def expand(raw: dict[str, Any], path: Path) -> list[Job]:
    """The jobs of a tagging suite (see the module docstring); each is checked as a tagging run."""
    from promptlearning.runs.tagging import TAGGING_MAX_LENGTH, check_tagging_config

    tasks = suite_tasks(raw.get("tasks"), path, tagging=True)
    fixed: dict[str, Any] = {"kind": "tagging"}
    cross = _cross_domain(raw.get("cross_domain"), path)
    if cross:
        fixed["cross_domain"] = cross
    jobs = experiment.expand_grid(raw, path, tasks, head={"kind": "token_classification"},
                                  max_length=TAGGING_MAX_LENGTH, fixed=fixed)
    for job in {j.label: j for j in jobs}.values():  # one job per method says what each method's runs can do
        try:
            check_tagging_config(experiment.experiment_config(job.config))
        except PromptLearningError as exc:
            raise type(exc)(f"suite {path}, method {job.label!r}: {exc}") from None
    return jobs


def _kept(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: scores[k] for k in KEPT_SCORES if k in scores}


def score_elsewhere(model: Any, target: dict[str, Any], max_test: int | None) -> dict[str, Any]:
    """The trained tagger's scores on one cross-domain test set (a fixed random ``max_test`` of its sentences, as ``--max-test`` draws them)."""
    from promptlearning.data.loading import DataConfig
    from promptlearning.runs.tagging import evaluate_tagger, evaluate_tagger_on_file

    if target.get("test_file"):
        scores = evaluate_tagger_on_file(model, target["test_file"], max_test=max_test)
    else:
        scores = evaluate_tagger(model, DataConfig(task=target["task"], max_test=max_test))
    return {**_kept(scores), "unseen_tags": scores["unseen_tags"]}


def execute(job: Job, log: Any = lambda _: None, workdir: Path | None = None) -> dict[str, Any]:
    """Train one tagger; its in-domain scores, each cross-domain set's, cost and where it ran."""
    from promptlearning.runs.tagging import run_tagging

    cfg = experiment.experiment_config(job.config)
    device = torch.device("cuda") if cfg.train.device != "cpu" and torch.cuda.is_available() else torch.device("cpu")
    memory_kind = reset_peak_memory(device)
    result = run_tagging(cfg, baseline=False, log=log)
    model = result.pop("_model")
    result.pop("adapter", None)
    result["test"] = _kept(result["test"])
    result["cross_domain"] = {target["name"]: score_elsewhere(model, target, cfg.data.max_test)
                              for target in job.config.get("cross_domain", [])}
    result["peak_memory_mb"] = peak_memory_mb(device)
    result["peak_memory_kind"] = memory_kind
    result["batch_size"] = cfg.train.batch_size
    result["lr"] = cfg.train.lr
    result["label"] = job.label
    result["task"] = job.task  # the suite's name for it (a file's task is otherwise named after the file)
    result["dev_curve"] = [list(point) for point in result.get("dev_curve", [])]
    result["machine"] = machine_info()
    result["load_avg_1m"] = os.getloadavg()[0]  # other work on the machine slows every timing
    del model
    gc.collect()
    return result
