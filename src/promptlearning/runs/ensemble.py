"""`train --ensemble N`: N prompts for one task, saved and answered as one adapter.

Member i is an ordinary single-task run (:func:`run_experiment`) in ``OUTPUT/members/<i>`` with
training seed ``seed + i`` and, where the method's config has one, prompt ``init_seed + i``: the
members see the same few-shot split but start from different prompts and meet the examples in a
different order, which is where an ensemble's diversity comes from (Lester et al. ensembled
prompts trained from separate initialisations). Each member keeps its best-on-dev state; the
ensemble of those is saved as one adapter in ``OUTPUT/best`` and scored on dev and test.

``--resume`` skips the members whose run finished (their ``results.json`` is there, made with
the same settings), continues the one that was interrupted from its checkpoint, and trains the
rest. ``OUTPUT/results.json`` holds the ensemble's scores with every member's next to them, and
``OUTPUT/metrics.jsonl`` one line per member and one for the ensemble.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from promptlearning.backbones import Backbone, shared_backbone
from promptlearning.ensemble import COMBINE, EnsembleModel, check_member, ensemble_methods
from promptlearning.errors import ConfigError
from promptlearning.fileio import write_json
from promptlearning.methods import get_method
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import ExperimentConfig, load_data, make_split, run_experiment
from promptlearning.training.metrics import evaluate
from promptlearning.training.trainer import CHECKPOINT_DIR, METRICS_FILE

MEMBERS_DIR = "members"
RESULTS_FILE = "results.json"
MEMBER_SCORES = ("seed", "dev_accuracy", "test_accuracy", "test_macro_f1", "best_step", "steps", "train_seconds",
                 "trainable_params")


def check_ensemble_size(size: int | None) -> int:
    if size is None or isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ConfigError(f"--ensemble needs N >= 2 prompts (got {size}); drop it to train one prompt")
    return size


def member_config(cfg: ExperimentConfig, index: int) -> ExperimentConfig:
    """Member ``index``'s run: seed + index, init_seed + index where the method has one, its own folder."""
    options = dict(cfg.method_options)
    fields = {f.name: f for f in dataclasses.fields(get_method(cfg.method).config_class)}
    if "init_seed" in fields:
        options["init_seed"] = int(options.get("init_seed", fields["init_seed"].default)) + index
    out = str(Path(cfg.output_dir) / MEMBERS_DIR / str(index)) if cfg.output_dir else None
    return dataclasses.replace(copy.deepcopy(cfg), ensemble=None, method_options=options, output_dir=out,
                               train=dataclasses.replace(cfg.train, seed=cfg.train.seed + index))


def refuse_unsupported(cfg: ExperimentConfig, backbone: Backbone, labels: list[str]) -> None:
    """Before any training: the method and head must be ones the ensemble can combine (checked on a
    model built as the members will be)."""
    if cfg.tasks:
        raise ConfigError("--ensemble trains prompts for one task; drop --tasks (or --ensemble)")
    if get_method(cfg.method).trains_backbone:
        raise ConfigError(f"--ensemble cannot combine {cfg.method} (it changes the backbone itself); use one of: "
                          f"{', '.join(ensemble_methods())}")
    check_member(PromptModel.build(backbone, cfg.method, labels, method_options=cfg.method_options, head=cfg.head,
                                   max_length=cfg.max_length, template=cfg.template))


def _finished(cfg: ExperimentConfig) -> dict[str, Any] | None:
    """A member's results if its run finished with these settings (a resumed ensemble does not retrain it)."""
    assert cfg.output_dir is not None
    path = Path(cfg.output_dir) / RESULTS_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    now = json.loads(json.dumps(cfg.to_dict()))
    if {**saved.get("config", {}), "output_dir": None} != {**now, "output_dir": None}:  # a moved run folder is the same run
        raise ConfigError(f"member run {cfg.output_dir} was made with other settings; resume with the same options "
                          "or choose a new --output")
    return dict(saved["results"])


def _train_member(cfg: ExperimentConfig, backbone: Backbone, resume: bool, baseline: bool,
                  log: Any) -> tuple[dict[str, Any], PromptModel]:
    """One member: skipped if finished (on resume), continued from its checkpoint, or trained afresh."""
    if resume and cfg.output_dir:
        done = _finished(cfg)
        if done is not None:
            log(f"member seed {cfg.train.seed}: finished before, not retrained "
                f"(dev {done['dev_accuracy']:.4f}, test {done['test_accuracy']:.4f})")
            return done, PromptModel.from_pretrained(Path(cfg.output_dir) / "best", backbone=backbone)
    again = resume and cfg.output_dir is not None and (Path(cfg.output_dir) / CHECKPOINT_DIR).is_dir()
    result = run_experiment(cfg, resume=again, backbone=backbone, baseline=baseline and not resume, log=log)
    return result, result.pop("_model")


def run_ensemble(cfg: ExperimentConfig, *, resume: bool = False, backbone: Backbone | None = None,
                 baseline: bool = True, log: Any = print) -> dict[str, Any]:
    """Train ``cfg.ensemble`` members, combine them (mean of their probabilities) and score the ensemble."""
    size = check_ensemble_size(cfg.ensemble)
    started = time.perf_counter()
    backbone = backbone or shared_backbone(cfg.backbone, cfg.dtype)
    data = load_data(cfg.data)
    refuse_unsupported(cfg, backbone, data.labels)
    out = Path(cfg.output_dir) if cfg.output_dir else None
    if resume and (out is None or not (out / MEMBERS_DIR).is_dir()):
        raise ConfigError(f"no ensemble run in {out} to resume (no {MEMBERS_DIR}/ folder); drop --resume to start it")
    members: list[PromptModel] = []
    scores: list[dict[str, Any]] = []
    for i in range(size):
        member_cfg = member_config(cfg, i)
        log(f"ensemble member {i + 1}/{size} (seed {member_cfg.train.seed})")
        result, model = _train_member(member_cfg, backbone, resume, baseline and i == 0, log)
        members.append(model.eval())
        scores.append({"member": i, **{k: result.get(k) for k in MEMBER_SCORES}})
    ensemble = EnsembleModel(members)
    split = make_split(cfg.data, data)
    dev = evaluate(ensemble, ensemble.encode(split.dev), cfg.train.eval_batch_size)
    inference_started = time.perf_counter()
    test = evaluate(ensemble, ensemble.encode(split.test), cfg.train.eval_batch_size)
    test_seconds = time.perf_counter() - inference_started
    result = {"task": data.name, "method": cfg.method,
              "backbone": backbone.info.name, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed,
              "seed": cfg.train.seed, "ensemble": size, "combine": COMBINE,
              "trainable_params": ensemble.num_trainable(), "dev_accuracy": dev["accuracy"],
              "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
              "test_seconds_per_row": test_seconds / max(1, test["n"]),
              "train_seconds": sum(float(s["train_seconds"] or 0.0) for s in scores),
              "wall_seconds": time.perf_counter() - started, "members": scores}
    best = [s["test_accuracy"] for s in scores]
    log(f"ensemble of {size}: dev accuracy {dev['accuracy']:.4f}  test accuracy {test['accuracy']:.4f}  "
        f"test macro-F1 {test['macro_f1']:.4f}  (members' test accuracy {min(best):.4f}..{max(best):.4f}, "
        f"mean {sum(best) / size:.4f})")
    if out is not None:
        extra = {"task": result["task"], "shots": cfg.data.shots, "data_seed": cfg.data.data_seed,
                 "seeds": [s["seed"] for s in scores]}
        ensemble.save_pretrained(out / "best", extra=extra)
        lines = [{"member": s["member"], "seed": s["seed"], "dev_accuracy": s["dev_accuracy"],
                  "test_accuracy": s["test_accuracy"], "test_macro_f1": s["test_macro_f1"]} for s in scores]
        lines.append({"ensemble": size, "combine": COMBINE, "dev_accuracy": dev["accuracy"],
                      "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]})
        (out / METRICS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
        write_json(out / RESULTS_FILE, {"config": cfg.to_dict(), "results": result})
        result["adapter"] = str(out / "best")
    result["_model"] = ensemble
    return result
