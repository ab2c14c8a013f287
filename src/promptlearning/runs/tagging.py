"""One few-shot tagging run: tagged data, the model with a token-labelling head, training, scores, adapter.

The counterpart of :mod:`promptlearning.runs.single_task` for heads whose output is
``TOKEN_LABELS``: the same :class:`~promptlearning.runs.single_task.ExperimentConfig`, the same
methods and backbones, the plain trainer (through
:class:`~promptlearning.training.token_trainer.TokenTrainer`, which batches per-position
labels) and the same adapter files (the labels are the tag set). Only the data differ: tagged
sentences, K of them for training and K for dev, scored word by word.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptlearning.backbones import Backbone, shared_backbone
from promptlearning.data.loading import DataConfig, test_subset
from promptlearning.data.tagging import (
    TaggedData,
    TaggedSentence,
    TaggedSplit,
    is_tagged_task,
    load_tagged_files,
    load_tagged_task,
    read_tagged_file,
    tagged_few_shot,
)
from promptlearning.data.token_batching import TokenEncoded, encode_tagged
from promptlearning.devices import resolve_device
from promptlearning.errors import ConfigError, DataError
from promptlearning.fileio import write_json
from promptlearning.heads.base import OutputKind
from promptlearning.launcher import is_main_process
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import ExperimentConfig, backbone_for
from promptlearning.seeding import seed_everything
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.strategies import PLAIN, check_requests, sections_of, select_strategy
from promptlearning.training.token_metrics import evaluate_tagged, tag_scores, tagger_template
from promptlearning.training.token_trainer import TokenTrainer

#: ``max_length`` of tagging runs whose user set none: a WSJ sentence averages ~35 sub-tokens, and
#: cut words are errors, so the sentence classifiers' 64 would cost words.
TAGGING_MAX_LENGTH = 128


# ---------------------------------------------------------------------------- data
def _column(value: str, default: int, flag: str) -> int:
    """A column number from --text-column / --label-column (their CSV defaults mean: the usual column)."""
    if value in ("text", "label"):
        return default
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{flag} of a tagged file is a column number (1, 2, ..., or -1 for the last), "
                        f"not {value!r}") from None


def tagged_data(cfg: DataConfig) -> TaggedData:
    """The tagging task a data config names: a registered one (``--task``) or the user's files."""
    cfg.check()
    if cfg.train_file:
        if cfg.text_b_column:
            raise ConfigError("a tagged sentence is one text; drop --text-b-column")
        return load_tagged_files(cfg.train_file, cfg.test_file, tag_column=_column(cfg.label_column, -1, "--label-column"),
                                 word_column=_column(cfg.text_column, 1, "--text-column"), description=cfg.description)
    assert cfg.task is not None
    return load_tagged_task(cfg.task)


def tagged_split(cfg: DataConfig, data: TaggedData) -> TaggedSplit:
    """K train and K (or --dev-shots) dev sentences, the fixed test set (cut to --max-test sentences)."""
    split = tagged_few_shot(data, cfg.shots, cfg.data_seed, cfg.dev_shots)
    if cfg.max_test is not None:
        split = dataclasses.replace(split, test=test_subset(split.test, cfg.max_test))
    return split


def encode_sentences(model: PromptModel, data: TaggedData, sentences: Sequence[TaggedSentence]) -> list[TokenEncoded]:
    """Sentences of ``data`` tokenised for ``model`` (its template, max length and tag set)."""
    return encode_tagged(model.backbone.tokenizer, [(s.words, data.names(s)) for s in sentences],
                         {t: i for i, t in enumerate(model.labels)}, model.max_length, tagger_template(model))


# ---------------------------------------------------------------------------- the run
def check_tagging_config(cfg: ExperimentConfig) -> None:
    """Refuse, before anything loads, what a tagging run cannot do."""
    if cfg.tasks:
        raise ConfigError("tagging trains one task at a time; give --task (or --train-file) instead of --tasks")
    if cfg.head.head_class().output is not OutputKind.TOKEN_LABELS:
        raise ConfigError(f"the {cfg.head.kind} head gives one label per text, but a tagging task needs one per "
                          "word; use --head token_classification")
    if cfg.data.task and not cfg.data.train_file and not is_tagged_task(cfg.data.task):
        from promptlearning.data.tagging import tagged_task_names

        raise ConfigError(f"task {cfg.data.task!r} labels whole texts, not words; the token_classification head "
                          f"needs a tagging task ({', '.join(tagged_task_names())}) or --train-file with CoNLL or "
                          "word/TAG lines")
    if cfg.truncation != "head":
        raise ConfigError(f"--truncation {cfg.truncation} chooses the part of a text that is kept; a tagged sentence "
                          "keeps its first words (the words cut are counted as errors): drop --truncation")
    check_requests(sections_of(cfg), several_tasks=False)


def run_tagging(cfg: ExperimentConfig, *, resume: bool = False, backbone: Backbone | None = None,
                baseline: bool = True, log: Any = print,
                callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train one method with a token-labelling head on one few-shot tagging split; every number a table needs."""
    started = time.perf_counter()
    check_tagging_config(cfg)
    data = tagged_data(cfg.data)
    split = tagged_split(cfg.data, data)
    backbone = backbone or shared_backbone(cfg.backbone, cfg.dtype)
    seed_everything(cfg.train.seed)
    backbone = backbone_for(cfg.method, backbone)
    model = PromptModel.build(backbone, cfg.method, data.tags, method_options=cfg.method_options, head=cfg.head,
                              task=data.name, max_length=cfg.max_length, template=cfg.template)
    strategy = select_strategy(sections_of(cfg), several_tasks=False, method=model.method)
    if strategy is not PLAIN:
        raise ConfigError(f"tagging trains with the plain trainer, but this run asks for {strategy.name} "
                          f"({strategy.summary}); choose another method or fix its layers (e.g. --option selected_layers=[...])")
    train_items, dev_items, test_items = (encode_sentences(model, data, part) for part in (split.train, split.dev, split.test))
    trainable, total = model.num_trainable(), model.num_backbone_parameters()
    words = sum(len(s.words) for s in split.train)
    log(f"task {data.name}: {len(split.train)} train sentences ({words} words) / {len(split.dev)} dev / "
        f"{len(split.test)} test, {len(data.tags)} tags; method {cfg.method}; backbone {backbone.info.name}")
    log(f"trainable parameters: {trainable:,} ({100 * trainable / total:.3f}% of the backbone's {total:,})")
    if model.template:
        log(f"template: {model.template!r}")
    result: dict[str, Any] = {"task": data.name, "method": cfg.method, "backbone": backbone.info.name,
                              "head": cfg.head.kind, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed,
                              "seed": cfg.train.seed, "trainable_params": trainable, "backbone_params": total,
                              "trainable_share": trainable / total, "prompt_layers": model.method.prompt_layers,
                              "tags": len(data.tags), "test_sentences": len(split.test)}
    result["majority_test_accuracy"] = _majority(data, split)
    if baseline and not resume and is_main_process():  # data-parallel: the other processes only train
        model.to(resolve_device(cfg.train.device))
        untrained = evaluate_tagged(model, test_items, cfg.train.eval_batch_size)
        result["untrained_test_accuracy"] = untrained["accuracy"]
        log(f"untrained baseline: test word accuracy {untrained['accuracy']:.4f} "
            f"(most frequent training tag {result['majority_test_accuracy']:.4f})")
    out = Path(cfg.output_dir) if cfg.output_dir else None
    run_info = {"task": data.name, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed}
    fit = TokenTrainer(model, cfg.train, train_items, dev_items, out, run_info, callbacks).fit(resume=resume)
    dev = evaluate_tagged(model, dev_items, cfg.train.eval_batch_size)
    test = evaluate_tagged(model, test_items, cfg.train.eval_batch_size)
    result.update({"dev_accuracy": dev["accuracy"], "test_accuracy": test["accuracy"],
                   "test_macro_f1": test["macro_f1"], "test": test, "best_step": fit.best_step, "steps": fit.steps,
                   "seconds_per_step": fit.seconds_per_step, "train_seconds": fit.train_seconds,
                   "dev_curve": [(h["step"], h["dev_accuracy"]) for h in fit.history],
                   "wall_seconds": time.perf_counter() - started, "stopped_early": fit.stopped_early})
    log(describe_scores(test, "test") + f"  (dev word accuracy {dev['accuracy']:.4f}, best step {fit.best_step}, "
        f"{fit.seconds_per_step:.3f} s/step)")
    if out is not None:
        if is_main_process():
            write_json(out / "results.json", {"config": cfg.to_dict(), "results": result})
        result["adapter"] = str(out / "best")
    result["_model"] = model
    return result


def _majority(data: TaggedData, split: TaggedSplit) -> float:
    """Word accuracy of tagging every test word with the most frequent training tag."""
    counts = Counter(t for s in split.train for t in s.tags)
    top = data.tags[counts.most_common(1)[0][0]]
    gold = [data.names(s) for s in split.test]
    return float(tag_scores([[top] * len(g) for g in gold], gold, set(data.tags))["accuracy"])


def describe_scores(scores: dict[str, Any], split: str) -> str:
    """One line of a tagger's scores: spans for BIO tags, else word accuracy and macro-F1, and what was unavoidable."""
    text = f"{split} word accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}"
    if scores.get("scheme") == "bio":
        text = (f"{split} entity precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
                f"F1 {scores['f1']:.4f}  ({text[len(split) + 1:]})")
    notes = []
    if scores.get("unseen_tag_words"):
        notes.append(f"{scores['unseen_tag_words']} words with tags the model lacks, counted wrong; accuracy without "
                     f"them {scores['accuracy_known_tags']:.4f}")
    if scores.get("words_cut"):
        notes.append(f"{scores['words_cut']} words past --max-length, counted wrong")
    return text + (f"  [{'; '.join(notes)}]" if notes else "")


# ---------------------------------------------------------------------------- a saved tagger
def evaluate_tagger(model: PromptModel, cfg: DataConfig, split: str = "test") -> dict[str, Any]:
    """A saved tagger's scores on a tagging task's split; the task may be another domain (its tags outside
    the model's are counted wrong and listed in ``unseen_tags``)."""
    data = tagged_data(cfg)
    if split == "test":
        sentences = data.test if cfg.max_test is None else test_subset(data.test, cfg.max_test)
    else:
        sentences = getattr(tagged_split(cfg, data), split)
    return {"task": data.name, "split": split, **_scores(model, data, sentences)}


def evaluate_tagger_on_file(model: PromptModel, path: str, *, label_column: str = "label",
                            text_column: str = "text", max_test: int | None = None) -> dict[str, Any]:
    """A saved tagger's scores on every sentence of one tagged file (CoNLL or word/TAG)."""
    raw = read_tagged_file(path, _column(label_column, -1, "--label-column"), _column(text_column, 1, "--text-column"))
    tags = sorted({t for _, ts in raw for t in ts})
    index = {t: i for i, t in enumerate(tags)}
    sentences = [TaggedSentence(tuple(w), tuple(index[t] for t in ts)) for w, ts in raw]
    if max_test is not None:
        sentences = test_subset(sentences, max_test)
    data = TaggedData(Path(path).stem, tags, "", [], sentences)
    return {"task": data.name, "split": "test", **_scores(model, data, sentences)}


def _scores(model: PromptModel, data: TaggedData, sentences: Sequence[TaggedSentence]) -> dict[str, Any]:
    used = {data.tags[t] for s in sentences for t in s.tags}
    return {**evaluate_tagged(model, encode_sentences(model, data, sentences)),
            "unseen_tags": sorted(used - set(model.labels))}
