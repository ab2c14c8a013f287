"""One prompt search from a config: data, scorer, budget, strategy, adapter, test accuracy.

The CLI's ``search`` and the benchmark script both go through :func:`run_search`, so a number
in a results table means what ``promptlearning search`` prints. A run directory holds
``search_config.json`` (what was run, checked on ``--resume``), ``journal.jsonl`` (every
evaluation, the resume log), ``best/`` (the best prompt as an adapter: a readable template
for discrete searches, the soft prompt for CMA-ES) and ``results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptlearning.backbones import Backbone, shared_backbone
from promptlearning.data.loading import DataConfig, load_data, make_split
from promptlearning.data.prompts import handwritten_template
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.fileio import read_json, write_json
from promptlearning.heads.base import HeadConfig
from promptlearning.search.base import SearchContext, get_searcher
from promptlearning.search.budget import MAX_REPEATS, SearchBudget
from promptlearning.search.candidates import SLOTS, parse_seeds
from promptlearning.search.scoring import PromptScorer, count_rows
from promptlearning.seeding import seed_everything
from promptlearning.training.metrics import evaluate

SCORE_SPLITS = ("dev", "train", "train+dev")
CONFIG_FILE = "search_config.json"


@dataclass
class SearchRunConfig:
    strategy: str = "evolution"
    options: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    backbone: str = "smollm2-135m"
    head: HeadConfig = field(default_factory=lambda: HeadConfig(kind="verbalizer"))
    seed_prompts: list[str] | None = None  # None: the task's hand-written prompt
    budget: int = 2000  # forward passes (rows through the backbone): --max-forward-passes
    seed: int = 42
    max_length: int = 96
    batch_size: int = 32
    margin_weight: float = 0.5
    score_split: str = "dev"
    output_dir: str | None = None
    quiet: bool = False
    evaluate_test: bool = True

    def check(self) -> None:
        if self.budget < 1:
            raise ConfigError(f"budget must be >= 1 forward pass (got {self.budget}); pass --max-forward-passes 2000")
        if self.score_split not in SCORE_SPLITS:
            raise ConfigError(f"unknown score split {self.score_split!r}; choose one of: {', '.join(SCORE_SPLITS)}")
        if self.batch_size < 1 or self.max_length < 8 or self.margin_weight < 0:
            raise ConfigError("batch_size must be >= 1, max_length >= 8 and margin_weight >= 0")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("quiet")
        return out


def _fingerprint(cfg: SearchRunConfig, options: dict[str, Any]) -> dict[str, Any]:
    values = cfg.to_dict()
    values["options"] = options
    values.pop("output_dir")
    values.pop("evaluate_test")
    return json.loads(json.dumps(values))


def _prepare_output(cfg: SearchRunConfig, options: dict[str, Any], resume: bool, log: Any) -> Path | None:
    """The run directory, checked against a resumed search's settings (only the budget may change)."""
    out = Path(cfg.output_dir) if cfg.output_dir else None
    fingerprint = _fingerprint(cfg, options)
    if out is None:
        if resume:
            raise ConfigError("--resume needs --output, the directory of the search to continue")
        return None
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_FILE, fingerprint)
        return out
    saved = read_json(out / CONFIG_FILE, lambda why: TrainingError(
        f"--resume given but {why}; drop --resume to start afresh"))
    # the budget may change: a resume replays the journal from the start, so a larger budget
    # continues the very search a longer run would have made, and a smaller one stops it earlier
    if {**saved, "budget": cfg.budget} != fingerprint:
        raise TrainingError(f"the search in {out} was run with other settings; resume with the same "
                            "options (only --max-forward-passes may change) or choose a new --output")
    if saved.get("budget") != cfg.budget:
        log(f"resuming with a budget of {cfg.budget} forward passes (it was {saved.get('budget')})")
        write_json(out / CONFIG_FILE, fingerprint)
    return out


def _log_outcome(cfg: SearchRunConfig, outcome: Any, budget: SearchBudget, log: Any) -> None:
    """What the search found, for the console: convergence, the best prompt and the top five."""
    best = budget.best
    assert best is not None
    if budget.converged:
        log(f"stopped before the budget: the last {budget.max_repeats} candidates had all been scored already "
            "(the search has converged)")
    log(f"best prompt: {outcome.description}")
    log(f"best {cfg.score_split} accuracy {best.accuracy:.4f} (margin {best.margin:.3f}) after {budget.evaluations} "
        f"evaluations, {budget.used} forward passes")
    log("best prompts:")
    for i, (prompt, score) in enumerate(outcome.top[:5], 1):
        log(f"  {i}. acc {score.accuracy:.4f} margin {score.margin:+.3f}  {prompt!r}")


def run_search(cfg: SearchRunConfig, *, resume: bool = False, backbone: Backbone | None = None,
               log: Any = print) -> dict[str, Any]:
    """Run one search and return every number a table needs (the best model under ``_model``)."""
    started = time.perf_counter()
    cfg.check()
    cls = get_searcher(cfg.strategy)
    options = cls.config_class.from_dict(dict(cfg.options))
    data = load_data(cfg.data)
    split = make_split(cfg.data, data)
    examples = {"dev": split.dev, "train": split.train, "train+dev": split.train + split.dev}[cfg.score_split]
    backbone = backbone or shared_backbone(cfg.backbone)
    seed_everything(cfg.seed)
    # building the scorer's models runs the backbone once, for what their head encodes (the label-description
    # head's label names); every later model reuses it, so these rows are the search's only set-up cost
    with count_rows(backbone) as setup_rows:
        scorer = PromptScorer(backbone, data.labels, examples, head=cfg.head, task=data.name,
                              max_length=cfg.max_length, batch_size=cfg.batch_size, margin_weight=cfg.margin_weight)
        slots = tuple(s for s in SLOTS if s == "{text_a}" or any(e.text_b is not None for e in examples))
        if cfg.seed_prompts is None:
            default = scorer.model_for(None).template or handwritten_template(data.name, data.labels)
            seed_texts = [default]
        else:
            seed_texts = list(cfg.seed_prompts)
        seeds = parse_seeds(seed_texts, cls.max_prompt_words(options))
        probe = scorer.model_for(seeds[0].template)
    setup = setup_rows[0]
    # a one-example probe measures forward passes per example (several with multi-token label words)
    per_example = max(1, scorer.score_model(probe, probe.encode(examples[:1])).forwards)
    estimate = per_example * len(examples)
    need = setup + per_example + cls.evaluations_per_round(options) * estimate
    if cfg.budget < need:
        raise ConfigError(f"budget {cfg.budget} forward passes is too small for one generation of {cfg.strategy} "
                          f"({cls.evaluations_per_round(options)} prompts x {estimate} forward passes each); "
                          f"pass --max-forward-passes {need} or more")
    out = _prepare_output(cfg, options.to_dict(), resume, log)
    bounded = cls.round_limit(options) > 0  # a search that stops by itself never counts as converged
    budget = SearchBudget(cfg.budget, estimate=estimate, directory=out, resume=resume, quiet=cfg.quiet,
                          desc=cfg.strategy, max_repeats=0 if bounded else MAX_REPEATS)
    budget.charge(setup + per_example)
    log(f"task {data.name}: searching with {cfg.strategy} on {len(examples)} {cfg.score_split} examples "
        f"({per_example} forward pass(es) each), budget {cfg.budget} forward passes; backbone {backbone.info.name}")
    if setup:
        log(f"the head's label encodings took {setup} forward pass(es), made once and counted in the budget")
    if resume and budget.replayed:
        log(f"resuming: replaying {budget.replayed} journalled evaluations")
    ctx = SearchContext(scorer=scorer, budget=budget, seeds=seeds, seed=cfg.seed, slots=slots,
                        log=(lambda _: None) if cfg.quiet else log)
    try:
        outcome = cls(options, ctx).run()
    finally:
        budget.close()
    dropped = budget.finish()
    if dropped:
        log(f"the journal's last {dropped} evaluations lie past the budget of {cfg.budget} forward passes and were "
            "dropped from it (this run stops where a fresh run with that budget stops)")
    best = budget.best
    assert best is not None
    result: dict[str, Any] = {
        "task": data.name, "strategy": cfg.strategy, "backbone": backbone.info.name, "shots": cfg.data.shots,
        "data_seed": cfg.data.data_seed, "seed": cfg.seed, "options": options.to_dict(),
        "best_prompt": outcome.description, "dev_fitness": best.fitness, "dev_accuracy": best.accuracy,
        "dev_margin": best.margin, "forwards": budget.used, "budget": cfg.budget,
        "evaluations": budget.evaluations, "top": [{"prompt": p, **s.to_dict()} for p, s in outcome.top],
        "curve": budget.curve, "extra": outcome.extra, "search_seconds": time.perf_counter() - started,
        "score_split": cfg.score_split, "template": outcome.model.template, "converged": budget.converged,
    }
    _log_outcome(cfg, outcome, budget, log)
    if cfg.evaluate_test:
        test = evaluate(outcome.model, outcome.model.encode(split.test), cfg.batch_size)
        result.update({"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "n_test": test["n"]})
        log(f"test accuracy {test['accuracy']:.4f}  test macro-F1 {test['macro_f1']:.4f}  ({test['n']} examples)")
    result["wall_seconds"] = time.perf_counter() - started
    if out is not None:
        outcome.model.save_pretrained(out / "best", extra={"task": data.name, "search": cfg.strategy,
                                                           "best_prompt": outcome.description,
                                                           "dev_accuracy": best.accuracy})
        write_json(out / "results.json", {"config": cfg.to_dict(), "results": result})
        result["adapter"] = str(out / "best")
        log(f"adapter saved to {out / 'best'}; every evaluation in {out / 'journal.jsonl'}")
    result["_model"] = outcome.model
    return result
