"""One few-shot run from a config: data, model, baseline, training, evaluation, adapter.

The CLI's ``train``, the ``demo`` and the benchmark all go through :func:`run_experiment`,
so a number in a results table means exactly what ``promptlearning train`` prints.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from promptlearning.backbones import DEFAULT_BACKBONE, Backbone, shared_backbone  # noqa: F401
from promptlearning.data.batching import batches
from promptlearning.data.loading import DataConfig, load_data, make_split, test_subset  # noqa: F401  (re-exported)
from promptlearning.data.tasks import check_task_modality
from promptlearning.data.truncation import TruncationCount
from promptlearning.devices import resolve_device
from promptlearning.errors import ConfigError, PromptLearningError
from promptlearning.fileio import write_json
from promptlearning.heads.base import HeadConfig
from promptlearning.launcher import is_main_process
from promptlearning.memory import describe_peak, peak_memory
from promptlearning.methods.base import input_kind
from promptlearning.model import PromptModel
from promptlearning.seeding import seed_everything
from promptlearning.training import TrainConfig, TrainResult
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.distill import DistillConfig
from promptlearning.training.gate_search import SearchConfig
from promptlearning.training.meta_learning import MetaConfig
from promptlearning.training.metrics import evaluate, majority_accuracy
from promptlearning.training.multitask import MultiTaskConfig
from promptlearning.training.strategies import (
    BILEVEL,
    PLAIN,
    TrainerInputs,
    check_requests,
    configured_strategies,
    sections_of,
    select_strategy,
)

T = TypeVar("T")


def with_strategy_sections(cls: type[T]) -> type[T]:
    """Give ``cls`` (before ``@dataclass`` makes it one) a field per trainer strategy's options, from the table.

    Sections declared on ``cls`` keep their declaration (and static type); a strategy added to the
    table gets its field here, defaulting to its config's defaults, with no edit to this module."""
    for strategy in configured_strategies():
        name, config = strategy.section, strategy.config
        if name is None or config is None or name in cls.__dict__.get("__annotations__", {}):
            continue
        cls.__annotations__[name] = config
        setattr(cls, name, field(default_factory=config))
    return cls


@dataclass
@with_strategy_sections
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    backbone: str = DEFAULT_BACKBONE
    method: str = "p_tuning_v2"
    method_options: dict[str, Any] = field(default_factory=dict)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # the options of the trainer strategies (training.strategies), one section each; declared here for
    # their static types and the serialised key order, the table adds any other
    search: SearchConfig = field(default_factory=SearchConfig)  # SPT's gate search (bilevel)
    tasks: list[str] | None = None  # several tasks at once: cross-task training (see runs.multitask)
    multitask: MultiTaskConfig = field(default_factory=MultiTaskConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)  # teachers per task (with tasks)
    max_length: int = 64
    template: str | None = None
    output_dir: str | None = None
    truncation: str = "head"  # which part of an over-long input is kept: head, tail or head+tail
    dtype: str = "float32"  # what the frozen backbone's weights are held in: float32, bfloat16 or float16
    ensemble: int | None = None  # N >= 2: train N prompts and answer with their mean probabilities (runs.ensemble)
    demonstrations: int = 0  # generation: training pairs written before each input (the in-context prompt)

    def __post_init__(self) -> None:
        from promptlearning.memory import parse_dtype

        parse_dtype(self.dtype)  # an unknown name fails here, before anything loads
        if self.dtype != "float32" and _trains_backbone(self.method):
            # the optimizer would step the backbone's own bfloat16/float16 weights: an update under about
            # 1/256 of a weight (every one at fine-tuning's rate 3e-5) rounds away, so the run trains little
            raise ConfigError(f"{self.method} trains the backbone's own weights, which must stay float32 (updates "
                              f"smaller than the {self.dtype} rounding step would be lost); drop --dtype {self.dtype}, "
                              "or train a prompt method on the half-precision backbone")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train"] = self.train.to_dict()  # its own rule: settings added later absent at their defaults
        for key, default in (("truncation", "head"), ("dtype", "float32"), ("ensemble", None),
                             ("demonstrations", 0)):
            if out[key] == default:  # absent at its default: stored job keys and fingerprints stay as they were
                del out[key]
        return out


def _trains_backbone(method: str) -> bool:
    from promptlearning.methods import get_method

    try:
        return bool(get_method(method).trains_backbone)
    except PromptLearningError:  # an unknown method is refused where the model is built, with the list
        return False


def report_truncation(counts: dict[str, TruncationCount], max_length: int, mode: str, log: Any) -> None:
    """One line when inputs were cut: how many per split and how many tokens, and what to change."""
    if not any(c.cut for c in counts.values()):
        return
    parts = ", ".join(c.describe(part) for part, c in counts.items() if c.inputs)
    log(f"truncation: {parts} were longer than --max-length {max_length} and cut, keeping the {mode}; "
        "raise --max-length or choose --truncation head|tail|head+tail")


def refuse_untrainable_head(model: PromptModel) -> None:
    """A method that never trains (fixed_prompt) with a head whose weights mean nothing until trained
    (a classification head) would either train the head behind the method's back or score with random
    weights: neither is what was asked, so it is refused, naming the heads that need no training."""
    if not model.method.needs_training and model.head.needs_training:
        raise ConfigError(f"method {type(model.method).name} never trains, but head {model.head.kind} "
                          "has weights that must be trained; use --head verbalizer (a causal LM) or "
                          "--head label_description (an encoder)")


def backbone_for(method: str, backbone: Backbone) -> Backbone:
    """The backbone a run of ``method`` may use: a private copy when the method trains its weights
    (fine-tuning must not alter the frozen copy every other run shares), else the shared one."""
    from promptlearning.methods import get_method

    return copy.deepcopy(backbone) if get_method(method).trains_backbone else backbone


def refuse_unused_search_options(search: SearchConfig, method: str, options: dict[str, Any]) -> None:
    """Layer-search options on a run that does not search (a method without layer gates, or SPT with its
    layers fixed) would be ignored; a user who set ``--layer-budget 2`` on prompt tuning expects it to act."""
    changed = [f.name for f in dataclasses.fields(SearchConfig) if getattr(search, f.name) != f.default]
    if changed:
        flags = ", ".join("--" + BILEVEL.flag_names.get(name, name).replace("_", "-") for name in changed)
        fixed = " with fixed layers" if {"selected_layers", "random_layers"} & set(options) else ""
        verb = "acts" if len(changed) == 1 else "act"
        raise ConfigError(f"{flags} {verb} only on SPT's layer search, which this run ({method}{fixed}) does not "
                          "make; drop it, or use --method spt without fixed layers")


def _choose_layers(model: PromptModel, with_layers: Callable[[list[int]], PromptModel], cfg: ExperimentConfig,
                   train_items: list[Any], dev_items: list[Any], out: Path | None, resume: bool,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """SPT's layer choice, as result fields: the gate search on the supernet ``model`` (search scorer
    ``gates``), or successive halving over layer sets each trained alone (``retrain``; it reruns whole
    on resume, and is deterministic, so a resumed run chooses the same layers)."""
    from promptlearning.methods.protocols import layer_gates_of

    if cfg.search.scorer == "retrain":
        from promptlearning.training.halving_search import halving_search

        layers = layer_gates_of(model.method, "the layer search").candidate_layers
        halved = halving_search(with_layers, layers, cfg.train, cfg.search, train_items, len(model.labels), log)
        log(f"successive halving chose layers {halved['chosen_layers']} in {halved['seconds']:.1f} s "
            f"({halved['steps']} training steps over {halved['sets']} sets)")
        return {"chosen_layers": halved["chosen_layers"], "search_seconds": halved["seconds"],
                "search_steps": halved["steps"], "search_rungs": halved["rungs"]}
    from promptlearning.training.layer_selection import search_layers

    found = search_layers(model, cfg.train, cfg.search, train_items, dev_items, out, resume)
    log(f"search chose layers {found.chosen_layers} (gate probabilities "
        f"{[round(p, 3) for p in found.final_gates]}) in {found.search_seconds:.1f} s")
    return {"chosen_layers": found.chosen_layers, "search_seconds": found.search_seconds,
            "search_steps": found.search_steps, "final_gates": found.final_gates,
            "gate_history": found.gate_history, "gate_trace": found.gate_trace,
            "search_best_step": found.best_step, "search_dev_curve": found.dev_curve}


def run_experiment(cfg: ExperimentConfig, *, resume: bool = False, backbone: Backbone | None = None,
                   baseline: bool = True, log: Any = print,
                   callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train one method on one few-shot split and return every number a table needs.

    ``callbacks`` see the training of the final model (after SPT's layer search, its retraining)."""
    started = time.perf_counter()
    sections = sections_of(cfg)
    check_requests(sections, several_tasks=False)  # before anything loads
    data = load_data(cfg.data)
    split = make_split(cfg.data, data)
    backbone = backbone or shared_backbone(cfg.backbone, cfg.dtype)
    seed_everything(cfg.train.seed)
    backbone = backbone_for(cfg.method, backbone)
    check_task_modality(cfg.data.task, input_kind(backbone.info), cfg.backbone)
    model = PromptModel.build(backbone, cfg.method, data.labels, method_options=cfg.method_options,
                              head=cfg.head, task=data.name, max_length=cfg.max_length, template=cfg.template,
                              truncation=cfg.truncation)
    refuse_untrainable_head(model)
    strategy = select_strategy(sections, several_tasks=False, method=model.method)
    searched = strategy.searches_architecture
    if not searched:
        refuse_unused_search_options(cfg.search, cfg.method, cfg.method_options)  # before anything trains or evaluates
    counts = {part: TruncationCount() for part in ("train", "dev", "test")}
    train_items, dev_items, test_items = (model.encode(rows, count=counts[part]) for part, rows in
                                          (("train", split.train), ("dev", split.dev), ("test", split.test)))
    report_truncation(counts, model.max_length, cfg.truncation, log)
    with torch.no_grad():  # a head that reads the training data first (the frequency label mapping), in eval mode
        model.eval()
        model.head.fit_to_data(batches(train_items, cfg.train.eval_batch_size, model.pad_id, model.left_pad),
                               model._run)
        model.train()
    trainable, total = model.num_trainable(), model.num_backbone_parameters()
    log(f"task {data.name}: {len(split.train)} train / {len(split.dev)} dev / {len(split.test)} test, "
        f"labels {data.labels}; method {cfg.method}; backbone {backbone.info.name}")
    log(f"trainable parameters: {trainable:,} ({100 * trainable / total:.3f}% of the backbone's {total:,})")
    if model.template:
        log(f"template: {model.template!r}")
    result: dict[str, Any] = {"task": data.name, "method": cfg.method, "backbone": backbone.info.name,
                              "shots": cfg.data.shots, "data_seed": cfg.data.data_seed, "seed": cfg.train.seed,
                              "trainable_params": trainable, "backbone_params": total,
                              "trainable_share": trainable / total, "prompt_layers": model.method.prompt_layers}
    result["majority_test_accuracy"] = majority_accuracy([e.label for e in split.train], [e.label for e in split.test])
    main = is_main_process()  # a data-parallel run: the other processes train, and neither print nor write
    if baseline and trainable > 0 and not resume and main:  # nothing to train: the baseline is the result itself
        model.to(resolve_device(cfg.train.device))  # the device training will use
        untrained = evaluate(model, test_items, cfg.train.eval_batch_size)
        result["untrained_test_accuracy"] = untrained["accuracy"]
        log(f"untrained baseline: test accuracy {untrained['accuracy']:.4f} "
            f"(majority class {result['majority_test_accuracy']:.4f})")
    out = Path(cfg.output_dir) if cfg.output_dir else None
    run_info: dict[str, Any] = {"task": data.name, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed}
    if searched:
        # a searchable method (SPT): choose the layers, then rebuild and retrain the fixed model plainly
        def with_layers(layers: list[int]) -> PromptModel:
            return PromptModel.build(backbone, cfg.method, data.labels,
                                     method_options={**cfg.method_options, "selected_layers": layers}, head=cfg.head,
                                     task=data.name, max_length=cfg.max_length, template=cfg.template,
                                     truncation=cfg.truncation)

        found = _choose_layers(model, with_layers, cfg, train_items, dev_items, out, resume, log)
        model = with_layers(found["chosen_layers"])
        trainable = model.num_trainable()
        run_info.update({k: found[k] for k in ("chosen_layers", "gate_history", "search_seconds") if k in found})
        result.update({**found, "trainable_params": trainable, "trainable_share": trainable / total,
                       "prompt_layers": model.method.prompt_layers})
        if out is not None and (out / "gates.png").is_file():
            log(f"gate plot written to {out / 'gates.png'}")
        strategy = PLAIN
    if trainable == 0:
        # nothing to learn (a fixed prompt with the verbaliser): evaluate as is and save the adapter
        log("nothing to train: evaluating the model as it is")
        fit = TrainResult(best_dev=-1.0, best_step=0, steps=0, train_seconds=0.0, seconds_per_step=0.0)
        if out is not None and main:
            model.save_pretrained(out / "best", extra={"task": data.name})
    else:
        trainer = strategy.make_trainer(TrainerInputs(model, cfg.train, train_items, dev_items, out, run_info,
                                                      sections, [split.train], log, callbacks))
        # after SPT's search a resumed run may have been killed before the retraining's first checkpoint:
        # the search resumed above, the retraining then starts afresh
        retrain_fresh = searched and (out is None or not (out / "checkpoint").is_dir())
        fit = trainer.fit(resume=resume and not retrain_fresh)
    dev = evaluate(model, dev_items, cfg.train.eval_batch_size)
    test = evaluate(model, test_items, cfg.train.eval_batch_size)
    result.update({"dev_accuracy": dev["accuracy"], "test_accuracy": test["accuracy"],
                   "test_macro_f1": test["macro_f1"], "best_step": fit.best_step, "steps": fit.steps,
                   "seconds_per_step": fit.seconds_per_step, "train_seconds": fit.train_seconds,
                   "dev_curve": [(h["step"], h["dev_accuracy"]) for h in fit.history],
                   "wall_seconds": time.perf_counter() - started, "stopped_early": fit.stopped_early,
                   "dtype": cfg.dtype, **peak_memory()})
    log(f"dev accuracy {dev['accuracy']:.4f}  test accuracy {test['accuracy']:.4f}  "
        f"test macro-F1 {test['macro_f1']:.4f}  (best step {fit.best_step}, {fit.seconds_per_step:.3f} s/step)")
    log(f"{describe_peak(peak_memory())} (backbone weights in {cfg.dtype})")
    if out is not None:
        if main:
            write_json(out / "results.json", {"config": cfg.to_dict(), "results": result})
        result["adapter"] = str(out / "best")
    result["_model"] = model
    return result
