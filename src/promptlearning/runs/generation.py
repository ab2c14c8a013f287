"""One few-shot generation run: input -> target pairs, a causal LM with the language-modelling head, scores, adapter.

The counterpart of :mod:`promptlearning.runs.single_task` for heads whose output is ``TEXT``:
the same :class:`~promptlearning.runs.single_task.ExperimentConfig`, the same methods and
backbones, the plain trainer (through
:class:`~promptlearning.training.generation_trainer.GenerationTrainer`, which batches per-position
target labels) and the same adapter files (no labels; the template is saved, so ``generate`` and
``predict`` write the input as in training). Only the data differ: K pairs to train on, K for dev,
the fixed test set scored on greedy answers.

The two baselines are runs too, with ``--method fixed_prompt`` (nothing to train): the model with
no prompt (``--template '{text_a}'``) and the fixed hand-written prompt with ``--demonstrations N``,
the first N training pairs written before each input in the task's template.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptlearning.backbones import Backbone, shared_backbone
from promptlearning.data.loading import DataConfig, test_subset
from promptlearning.data.target_batching import encode_pairs
from promptlearning.data.templates import Template
from promptlearning.data.text_pairs import (
    INPUT_COLUMN,
    TARGET_COLUMN,
    PairData,
    PairSplit,
    TextPair,
    demonstration_template,
    generation_task_names,
    is_generation_task,
    load_generation_task,
    load_pair_files,
    pair_few_shot,
    read_pair_file,
)
from promptlearning.data.truncation import TruncationCount
from promptlearning.devices import resolve_device
from promptlearning.errors import ConfigError
from promptlearning.fileio import write_json
from promptlearning.heads.base import OutputKind
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import ExperimentConfig, backbone_for, report_truncation
from promptlearning.seeding import seed_everything
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.generation_eval import answer_budget, evaluate_generation, teacher_forced_scores
from promptlearning.training.generation_trainer import GenerationTrainer
from promptlearning.training.strategies import PLAIN, check_requests, sections_of, select_strategy
from promptlearning.training.trainer import TrainResult

#: ``max_length`` of generation runs whose user set none: the input and its target together.
GENERATION_MAX_LENGTH = 128
#: New tokens ``predict`` allows an adapter that does not record its own budget.
DEFAULT_ANSWER_TOKENS = 32


# ---------------------------------------------------------------------------- data
def _column(value: str, default_name: str, generation_default: str) -> str:
    """The user's column, or the generation default where the flag kept its classification default."""
    return generation_default if value == default_name else value


def pair_data(cfg: DataConfig) -> PairData:
    """The generation task a data config names: a registered one (``--task``) or the user's files
    (columns ``input`` and ``target`` unless --text-column / --label-column say otherwise)."""
    cfg.check()
    if cfg.train_file:
        if cfg.text_b_column:
            raise ConfigError("a generation pair is one input and one target; drop --text-b-column")
        return load_pair_files(cfg.train_file, cfg.test_file, input_column=_column(cfg.text_column, "text", INPUT_COLUMN),
                               target_column=_column(cfg.label_column, "label", TARGET_COLUMN),
                               description=cfg.description)
    assert cfg.task is not None
    return load_generation_task(cfg.task)


def pair_split(cfg: DataConfig, data: PairData) -> PairSplit:
    """K train and K (or --dev-shots) dev pairs, the fixed test set (cut to --max-test pairs)."""
    split = pair_few_shot(data, cfg.shots, cfg.data_seed, cfg.dev_shots)
    if cfg.max_test is not None:
        split = dataclasses.replace(split, test=test_subset(split.test, cfg.max_test))
    return split


def run_template(cfg: ExperimentConfig, data: PairData, split: PairSplit, tokenizer: Any) -> tuple[str, int]:
    """The template of the run and its max length: the user's or the task's template, with the first
    ``demonstrations`` training pairs before it; their tokens are added to --max-length, which
    bounds the input and target alone."""
    template = cfg.template or data.template
    bare = Template.parse(template)  # a template without {text_a}: one line, before the demonstrations are added
    if cfg.demonstrations < 0:
        raise ConfigError(f"--demonstrations must be >= 0 (got {cfg.demonstrations})")
    if not cfg.demonstrations:
        return template, cfg.max_length
    if cfg.demonstrations > len(split.train):
        raise ConfigError(f"--demonstrations {cfg.demonstrations} asks for more pairs than the {len(split.train)} "
                          f"training shots; use --demonstrations <= {len(split.train)} or raise --shots")
    shown = demonstration_template(template, split.train[:cfg.demonstrations])
    return shown, cfg.max_length + Template.parse(shown).fixed_length(tokenizer) - bare.fixed_length(tokenizer)


def encode_split(model: PromptModel, pairs: Sequence[TextPair], count: TruncationCount | None = None) -> list[Any]:
    """Pairs tokenised for ``model`` (its template, max length and truncation)."""
    template = Template.parse(model.template_of(0) or "{text_a}")
    return encode_pairs(model.backbone.tokenizer, template, pairs, model.max_length, truncation=model.truncation,
                        count=count)


# ---------------------------------------------------------------------------- the run
def check_generation_config(cfg: ExperimentConfig) -> None:
    """Refuse, before anything loads, what a generation run cannot do."""
    if cfg.tasks:
        raise ConfigError("generation trains one task at a time; give --task (or --train-file) instead of --tasks")
    if cfg.head.head_class().output is not OutputKind.TEXT:
        raise ConfigError(f"the {cfg.head.kind} head gives labels, but a generation task needs text; "
                          "use --head language_modeling")
    if cfg.data.task and not cfg.data.train_file and not is_generation_task(cfg.data.task):
        raise ConfigError(f"task {cfg.data.task!r} labels texts, it has no target texts; the language_modeling head "
                          f"needs a generation task ({', '.join(generation_task_names())}) or --train-file with input "
                          "and target columns")
    check_requests(sections_of(cfg), several_tasks=False)


def run_generation(cfg: ExperimentConfig, *, resume: bool = False, backbone: Backbone | None = None,
                   baseline: bool = True, log: Any = print,
                   callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train one method with the language-modelling head on one few-shot split of pairs (or, for a method
    with nothing to train, score its fixed prompt); every number a table needs."""
    started = time.perf_counter()
    check_generation_config(cfg)
    data = pair_data(cfg.data)
    split = pair_split(cfg.data, data)
    backbone = backbone or shared_backbone(cfg.backbone, cfg.dtype)
    template, max_length = run_template(cfg, data, split, backbone.tokenizer)
    seed_everything(cfg.train.seed)
    backbone = backbone_for(cfg.method, backbone)
    model = PromptModel.build(backbone, cfg.method, [], method_options=cfg.method_options, head=cfg.head,
                              task=data.name, max_length=max_length, template=template, truncation=cfg.truncation)
    strategy = select_strategy(sections_of(cfg), several_tasks=False, method=model.method)
    if strategy is not PLAIN:
        raise ConfigError(f"generation trains with the plain trainer, but this run asks for {strategy.name} "
                          f"({strategy.summary}); choose another method or fix its layers")
    counts = {part: TruncationCount() for part in ("train", "dev")}
    train_items, dev_items = (encode_split(model, rows, counts[part]) for part, rows in
                              (("train", split.train), ("dev", split.dev)))
    report_truncation(counts, model.max_length, cfg.truncation, log)
    trainable, total = model.num_trainable(), model.num_backbone_parameters()
    log(f"task {data.name}: {len(split.train)} train / {len(split.dev)} dev / {len(split.test)} test pairs; "
        f"method {cfg.method}; backbone {backbone.info.name}")
    log(f"trainable parameters: {trainable:,} ({100 * trainable / total:.3f}% of the backbone's {total:,})")
    log(f"template: {cfg.template or data.template!r}"
        + (f" after {cfg.demonstrations} demonstrations from the training pairs" if cfg.demonstrations else ""))
    budget = answer_budget(model, [p.target for p in [*split.train, *split.dev]])  # what training knows
    result: dict[str, Any] = {"task": data.name, "method": cfg.method, "backbone": backbone.info.name,
                              "head": cfg.head.kind, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed,
                              "seed": cfg.train.seed, "trainable_params": trainable, "backbone_params": total,
                              "trainable_share": trainable / total, "prompt_layers": model.method.prompt_layers,
                              "demonstrations": cfg.demonstrations, "test_pairs": len(split.test),
                              "max_new_tokens": budget}
    device = resolve_device(cfg.train.device)
    if baseline and trainable > 0 and not resume:
        model.to(device)
        untrained = evaluate_generation(model, split.test, cfg.train.eval_batch_size, budget)
        result["untrained_test_exact_match"] = untrained["exact_match"]
        log(f"untrained baseline: {describe_scores(untrained, 'test')}")
    out = Path(cfg.output_dir) if cfg.output_dir else None
    run_info = {"task": data.name, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed, "max_new_tokens": budget}
    if trainable == 0:
        log("nothing to train: evaluating the prompt as it is")
        fit = TrainResult(best_dev=-1.0, best_step=0, steps=0, train_seconds=0.0, seconds_per_step=0.0)
        model.to(device)
        if out is not None:
            model.save_pretrained(out / "best", extra=run_info)
    else:
        fit = GenerationTrainer(model, cfg.train, train_items, dev_items, out, run_info, callbacks).fit(resume=resume)
    dev = teacher_forced_scores(model, dev_items, cfg.train.eval_batch_size)
    test = evaluate_generation(model, split.test, cfg.train.eval_batch_size, budget)
    result.update({"dev_token_accuracy": dev["accuracy"], "dev_loss": dev["loss"],
                   "test_exact_match": test["exact_match"], "test_token_f1": test["token_f1"],
                   "test_rouge_l": test["rouge_l"], "test_bleu": test["bleu"], "test": test,
                   "best_step": fit.best_step, "steps": fit.steps, "seconds_per_step": fit.seconds_per_step,
                   "train_seconds": fit.train_seconds,
                   "dev_curve": [(h["step"], h["dev_accuracy"]) for h in fit.history],
                   "wall_seconds": time.perf_counter() - started, "stopped_early": fit.stopped_early})
    log(describe_scores(test, "test") + f"  (dev target-token accuracy {dev['accuracy']:.4f}, dev loss "
        f"{dev['loss']:.4f}, best step {fit.best_step}, {fit.seconds_per_step:.3f} s/step)")
    if out is not None:
        write_json(out / "results.json", {"config": cfg.to_dict(), "results": result})
        result["adapter"] = str(out / "best")
    result["_model"] = model
    return result


def describe_scores(scores: dict[str, Any], split: str) -> str:
    """One line of a generator's scores (and the inputs cut to fit, if any)."""
    text = (f"{split} exact match {scores['exact_match']:.4f}  token F1 {scores['token_f1']:.4f}  "
            f"ROUGE-L {scores['rouge_l']:.4f}  BLEU {scores['bleu']:.2f}  ({scores['n']} pairs)")
    if scores.get("inputs_cut"):
        text += f"  [{scores['inputs_cut']} inputs cut to fit --max-length]"
    return text


# ---------------------------------------------------------------------------- a saved generator
def evaluate_generator(model: PromptModel, cfg: DataConfig, split: str = "test",
                       max_new_tokens: int | None = None) -> dict[str, Any]:
    """A saved generator's scores on a generation task's split (the dev and train splits redrawn from
    the data config's shots and data seed); ``max_new_tokens`` is the adapter's answer budget (None:
    the longest target of the split plus the margin)."""
    data = pair_data(cfg)
    if split == "test":
        pairs = data.test if cfg.max_test is None else test_subset(data.test, cfg.max_test)
    else:
        pairs = getattr(pair_split(cfg, data), split)
    return {"task": data.name, "split": split, **evaluate_generation(model, pairs, max_new_tokens=max_new_tokens)}


def evaluate_generator_on_file(model: PromptModel, path: str, *, text_column: str = "text",
                               label_column: str = "label", max_test: int | None = None,
                               max_new_tokens: int | None = None) -> dict[str, Any]:
    """A saved generator's scores on every pair of one file (columns input and target by default)."""
    pairs = read_pair_file(path, _column(text_column, "text", INPUT_COLUMN), _column(label_column, "label", TARGET_COLUMN))
    if max_test is not None:
        pairs = test_subset(pairs, max_test)
    return {"task": Path(path).stem, "split": "test", **evaluate_generation(model, pairs, max_new_tokens=max_new_tokens)}


def answer_texts(model: PromptModel, texts: Sequence[str], max_new_tokens: int = DEFAULT_ANSWER_TOKENS,
                 count: TruncationCount | None = None) -> list[str]:
    """The model's greedy answer to each text (its first line), written in the adapter's template."""
    from promptlearning.training.generation_eval import generate_answers

    return generate_answers(model, texts, max_new_tokens, count=count)
