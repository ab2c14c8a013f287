"""`promptlearning` command line: thin over the library.

Options come from flags or a YAML file (``--config``); flags win. Method options are
generic (``--option key=value``), so a new method needs no CLI change. Errors a user can
cause print one line and exit non-zero, with no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from promptlearning.errors import ConfigError, PromptLearningError

EXAMPLES = """examples:
  promptlearning tasks
  promptlearning train --task mr --method p_tuning_v2 --shots 16 --output runs/mr
  promptlearning train --task cr --method prompt_tuning --option num_tokens=20 --option init=vocab --lr 0.03
  promptlearning train --train-file my.csv --text-column review --label-column stars --output runs/mine
  promptlearning train --config run.yaml --resume
  promptlearning train --tasks cr,mr --method multitask_prompt --distill-from cr=runs/cr/best,mr=runs/mr/best
  promptlearning evaluate --adapter runs/mr/best --task mr
  echo "a gorgeous, moving film" | promptlearning predict --adapter runs/mr/best
"""


# ---------------------------------------------------------------------------- parsing helpers
def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--option {text!r} is not KEY=VALUE; write e.g. --option num_tokens=20")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _parse_label_words(text: str) -> dict[str, list[str]]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("--label-words must be YAML like '{negative: [bad], positive: [good]}'") from exc
    if not isinstance(value, dict):
        raise ConfigError("--label-words must map each label to words, e.g. '{negative: [bad], positive: [good]}'")
    return {str(k): [str(w) for w in (v if isinstance(v, list) else [v])] for k, v in value.items()}


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist; check the --config path") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML ({type(exc).__name__}); fix its syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return data


def _section(values: dict[str, Any], key: str) -> dict[str, Any]:
    section = values.pop(key, None) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"'{key}' in the config file must be a mapping of name: value "
                          f"(got {type(section).__name__})")
    return dict(section)


def _fields(cls: Any) -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(cls))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls: Any, skip: tuple[str, ...] = ()) -> None:
    for f in _fields(cls):
        if f.name in skip:
            continue
        help_text = str(f.metadata.get("help", ""))
        if f.type in ("bool", bool):
            parser.add_argument(_flag(f.name), action="store_true", default=argparse.SUPPRESS, help=help_text)
            continue
        typ = {"int": int, "float": float, "int | None": int, "float | None": float}.get(str(f.type), str)
        parser.add_argument(_flag(f.name), type=typ, default=argparse.SUPPRESS,
                            help=help_text if "(default" in help_text else f"{help_text} (default: {f.default})")


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--task", default=argparse.SUPPRESS, help="registered task (see `promptlearning tasks`)")
    g.add_argument("--tasks", default=argparse.SUPPRESS, metavar="A,B,...",
                   help="several registered tasks trained at once (cross-task methods, e.g. multitask_prompt)")
    g.add_argument("--train-file", default=argparse.SUPPRESS, help="your own CSV, TSV or JSONL training data")
    g.add_argument("--test-file", default=argparse.SUPPRESS, help="your own test data (else a fixed part is held out)")
    g.add_argument("--text-column", default=argparse.SUPPRESS, help="column with the text (default: text)")
    g.add_argument("--text-b-column", default=argparse.SUPPRESS, help="second text column for sentence pairs")
    g.add_argument("--label-column", default=argparse.SUPPRESS, help="column with the label (default: label)")
    g.add_argument("--description", default=argparse.SUPPRESS, help="one-sentence description of your task")
    g.add_argument("--shots", type=int, default=argparse.SUPPRESS, help="K examples per class for training (default 16)")
    g.add_argument("--dev-shots", type=int, default=argparse.SUPPRESS, help="K per class for dev (default: --shots)")
    g.add_argument("--data-seed", type=int, default=argparse.SUPPRESS,
                   help="seed of the few-shot split: 13, 21, 42, 87 or 100 as in LM-BFF (default 13)")
    g.add_argument("--max-test", type=int, default=argparse.SUPPRESS, help="evaluate on a fixed random subset of N test examples")


def experiment_from(args: argparse.Namespace) -> Any:
    """Merge defaults, the YAML file and the flags (in that order) into an ExperimentConfig."""
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.single_task import DataConfig, ExperimentConfig
    from promptlearning.training import TrainConfig
    from promptlearning.training.distill import DistillConfig
    from promptlearning.training.gate_search import SearchConfig
    from promptlearning.training.meta_learning import MetaConfig
    from promptlearning.training.multitask import MultiTaskConfig

    data_keys = {f.name for f in dataclasses.fields(DataConfig)}

    from promptlearning.configs import build

    values: dict[str, Any] = _read_yaml(args.config) if getattr(args, "config", None) else {}
    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "config", "resume", "func", "option", "no_baseline", "continual")}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    search_keys = {f.name for f in dataclasses.fields(SearchConfig)}
    multitask_keys = {f.name for f in dataclasses.fields(MultiTaskConfig)}
    meta_keys = {f.name for f in dataclasses.fields(MetaConfig)}
    distill_keys = {f.name for f in dataclasses.fields(DistillConfig)}
    data = {k: values.pop(k) for k in list(values) if k in data_keys}
    train, head, options, search, multitask, meta, distill = (
        _section(values, key) for key in ("train", "head", "method_options", "search", "multitask", "meta", "distill"))
    top = {k: values.pop(k) for k in list(values)
           if k in ("backbone", "method", "max_length", "output_dir", "template", "tasks")}
    if values:
        raise ConfigError(f"unknown key(s) in {args.config}: {', '.join(sorted(values))}; "
                          "valid: task/data keys, tasks, backbone, method, method_options, head, train, search, multitask, meta, "
                          "distill, template, max_length, output_dir")
    for key, value in flags.items():
        if key in data_keys:
            data[key] = value
        elif key in train_keys:
            train[key] = value
        elif key in search_keys:
            search[key] = value
        elif key in multitask_keys:
            multitask[key] = value
        elif key in meta_keys:
            meta[key] = value
        elif key in distill_keys:
            distill[key] = value
        elif key == "tasks":
            top["tasks"] = [t.strip() for t in str(value).split(",") if t.strip()]
        elif key == "head":
            head["kind"] = value
        elif key == "label_words":
            head["label_words"] = _parse_label_words(value)
        elif key == "pooling":
            head["pooling"] = value
        elif key == "head_dropout":
            head["dropout"] = value
        elif key == "output":
            top["output_dir"] = value
        else:
            top[key] = value
    for text in getattr(args, "option", None) or []:
        k, v = _parse_option(text)
        options[k] = v
    if "train_file" in data and "task" in data and data["task"]:
        raise ConfigError("give either --task (a registered task) or --train-file (your data), not both")
    if "train_file" in data and "task" not in data:
        data["task"] = None
    return build(ExperimentConfig, {"data": build(DataConfig, data, "data option(s)"),
                                    "train": TrainConfig.from_dict(train), "head": HeadConfig.from_dict(head),
                                    "search": build(SearchConfig, search, "search option(s)"),
                                    "multitask": build(MultiTaskConfig, multitask, "multi-task option(s)"),
                                    "meta": build(MetaConfig, meta, "meta-learning option(s)"),
                                    "distill": build(DistillConfig, distill, "distillation option(s)"),
                                    "method_options": options, **top}, "option(s)")


# ---------------------------------------------------------------------------- commands
def cmd_tasks(args: argparse.Namespace) -> int:
    from promptlearning.data import list_tasks, load_task

    for spec in list_tasks():
        line = f"{spec.name:8s} labels: {', '.join(spec.labels)}"
        if not args.no_sizes:
            data = load_task(spec.name)
            counts = data.counts("pool")
            line += f"  pool {len(data.pool)} ({', '.join(f'{k} {v}' for k, v in counts.items())}), test {len(data.test)}"
        print(line)
        print(f"         {spec.description}")
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from promptlearning.backbones import ALIASES, list_backbones

    for entry in list_backbones():
        aliases = [a for a, t in ALIASES.items() if t == entry.name]
        print(f"{entry.name:12s} {entry.description}" + (f" (aliases: {', '.join(aliases)})" if aliases else ""))
    print("Any Hugging Face encoder (BERT, RoBERTa, DistilBERT, ELECTRA) or decoder (Llama, Mistral, Qwen, "
          "GPT-2) directory or hub id works too.")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from promptlearning.methods import list_methods

    for cls in list_methods():
        print(f"{cls.name:14s} {cls.summary}")
        for line in cls.config_class.option_lines():
            print(line)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from promptlearning.runs.single_task import run_experiment

    cfg = experiment_from(args)
    if args.resume and not cfg.output_dir:
        raise ConfigError("--resume needs --output, the directory of the run to continue")
    if cfg.distill.teachers and not cfg.tasks:
        from promptlearning.training.distill import NEEDS_TASKS

        raise ConfigError(NEEDS_TASKS)
    if getattr(args, "continual", None):
        return _train_continual(args, cfg)
    if cfg.tasks:
        from promptlearning.runs.multitask import run_multitask

        result = run_multitask(cfg, resume=args.resume)
    else:
        result = run_experiment(cfg, resume=args.resume, baseline=not args.no_baseline)
    if cfg.output_dir:
        print(f"adapter (best on dev) saved to {result['adapter']}; metrics in {cfg.output_dir}/metrics.jsonl")
    return 0


def _train_continual(args: argparse.Namespace, cfg: Any) -> int:
    """`train --continual a,b,c`: meet the tasks one at a time with a prompt library."""
    from promptlearning.runs.continual import ContinualConfig, run_continual

    names = [t.strip() for t in str(args.continual).split(",") if t.strip()]
    known = {f.name for f in dataclasses.fields(ContinualConfig)}
    values = {"backbone": cfg.backbone, "shots": cfg.data.shots, "data_seed": cfg.data.data_seed,
              "seed": cfg.train.seed, "max_test": cfg.data.max_test, "steps": cfg.train.max_steps,
              "lr": cfg.train.lr, "max_length": cfg.max_length, "output_dir": cfg.output_dir}
    run_continual(names, ContinualConfig(**{k: v for k, v in values.items() if k in known and v is not None}))
    return 0


def _load_model(args: argparse.Namespace) -> Any:
    from promptlearning.backbones import load_backbone
    from promptlearning.model import PromptModel

    backbone = load_backbone(args.backbone) if args.backbone else None
    return PromptModel.from_pretrained(args.adapter, backbone=backbone)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from promptlearning.runs.single_task import load_data, make_split, test_subset
    from promptlearning.training.metrics import evaluate

    model = _load_model(args)
    cfg = experiment_from(argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in ("adapter", "backbone", "split")}))
    if "task" not in vars(args) and "train_file" not in vars(args):
        from promptlearning.data import list_tasks

        if model.task not in {spec.name for spec in list_tasks()}:
            raise ConfigError(f"the adapter was trained on your own data (task {model.task!r}); "
                              "pass --train-file (and --test-file) to evaluate it, or --task NAME")
        cfg.data.task = model.task
    data = load_data(cfg.data)
    if data.labels != model.labels:
        raise ConfigError(f"the adapter predicts {model.labels} but task {data.name} has labels {data.labels}; "
                          "evaluate on a task with the same labels")
    examples = data.test if args.split == "test" else getattr(make_split(cfg.data, data), args.split)
    if cfg.data.max_test is not None and args.split == "test":
        examples = test_subset(examples, cfg.data.max_test)
    scores = evaluate(model, model.encode(examples))
    print(json.dumps({"task": data.name, "split": args.split, **scores}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    model = _load_model(args)
    texts = list(args.texts)
    if args.file:
        try:
            texts += [ln for ln in Path(args.file).read_text().splitlines() if ln.strip()]
        except FileNotFoundError as exc:
            raise ConfigError(f"--file {args.file} does not exist; give a text file with one input per line") from exc
    if not texts and not sys.stdin.isatty():
        texts = [ln for ln in sys.stdin.read().splitlines() if ln.strip()]
    if not texts:
        raise ConfigError("nothing to classify; give texts as arguments, --file FILE, or lines on stdin")
    probs = model.predict_proba(texts)
    for text, row in zip(texts, probs.tolist(), strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        if args.json:
            print(json.dumps({"text": text, "label": model.labels[best],
                              "probabilities": dict(zip(model.labels, row, strict=True))}))
        else:
            print(f"{model.labels[best]}\t{row[best]:.3f}\t{text}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    model = _load_model(args)
    outs = model.generate(args.texts, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                          temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    for text, out in zip(args.texts, outs, strict=True):
        print(f"{text}{out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from promptlearning.runs.demo import run_demo

    run_demo(output=args.output, steps=args.max_steps, quiet=args.quiet)
    return 0


# ---------------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    from promptlearning.heads.base import POOLINGS, head_kinds
    from promptlearning.training import TrainConfig

    parser = argparse.ArgumentParser(
        prog="promptlearning",
        description="Adapt a frozen pretrained transformer to text tasks by learning small prompts.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from promptlearning.version import __version__

    parser.add_argument("--version", action="version", version=f"promptlearning {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tasks", help="list the registered tasks with label names and sizes")
    p.add_argument("--no-sizes", action="store_true", help="do not load the corpora to count examples")
    p.set_defaults(func=cmd_tasks)
    sub.add_parser("backbones", help="list the packaged backbones").set_defaults(func=cmd_backbones)
    sub.add_parser("methods", help="list the prompt methods and their options").set_defaults(func=cmd_methods)

    p = sub.add_parser("train", help="few-shot train a prompt method and save the adapter",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML file with any of these options (flags override it)")
    p.add_argument("--method", default=argparse.SUPPRESS, help="prompt method (see `promptlearning methods`)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="method option, repeatable, e.g. --option num_tokens=20 --option layers=[3,4,5]")
    p.add_argument("--backbone", default=argparse.SUPPRESS, help="packaged name, local directory or hub id")
    p.add_argument("--max-length", type=int, default=argparse.SUPPRESS, help="max input tokens (default 64)")
    p.add_argument("--head", choices=head_kinds(), default=argparse.SUPPRESS,
                   help="classification (pooled linear layer, default) or verbalizer (LM-head scores of label words; "
                        "needs a causal LM such as smollm2-135m)")
    p.add_argument("--label-words", default=argparse.SUPPRESS, metavar="YAML",
                   help="verbaliser words per label, e.g. \"{negative: [bad, awful], positive: [good, great]}\" "
                        "(default: the label names)")
    p.add_argument("--template", default=argparse.SUPPRESS,
                   help="input template with {text_a} (and {text_b}, [Pn] slots for p_tuning), e.g. "
                        "\"Review: {text_a} Sentiment:\"")
    p.add_argument("--pooling", choices=POOLINGS, default=argparse.SUPPRESS, help="head pooling (default auto)")
    p.add_argument("--head-dropout", type=float, default=argparse.SUPPRESS, help="dropout before the head")
    p.add_argument("--output", default=argparse.SUPPRESS, help="run directory: best adapter, checkpoint, metrics")
    p.add_argument("--resume", action="store_true", help="continue the killed run in --output exactly")
    p.add_argument("--no-baseline", action="store_true", help="skip the untrained-baseline evaluation")
    _add_data_flags(p)
    _add_dataclass_flags(p.add_argument_group("training"), TrainConfig)  # type: ignore[arg-type]
    from promptlearning.training.gate_search import SearchConfig

    _add_dataclass_flags(p.add_argument_group("layer search (methods with gates, e.g. spt)"),  # type: ignore[arg-type]
                         SearchConfig)
    from promptlearning.training.meta_learning import MetaConfig
    from promptlearning.training.multitask import MultiTaskConfig

    _add_dataclass_flags(p.add_argument_group("several tasks (with --tasks)"), MultiTaskConfig)  # type: ignore[arg-type]
    _add_dataclass_flags(p.add_argument_group("meta-learning (with --tasks)"), MetaConfig)  # type: ignore[arg-type]
    from promptlearning.training.distill import DistillConfig

    _add_dataclass_flags(p.add_argument_group("distillation from per-task teachers (with --tasks)"),  # type: ignore[arg-type]
                         DistillConfig)
    p.add_argument("--continual", default=argparse.SUPPRESS, metavar="A,B,...",
                   help="meet these tasks one at a time with a prompt library (forgetting and transfer table)")
    p.set_defaults(func=cmd_train)

    for name, helptext in (("evaluate", "score a saved adapter on a task's test (or dev) split"),
                           ("predict", "classify texts with a saved adapter")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--adapter", required=True, help="adapter directory (e.g. runs/mr/best)")
        p.add_argument("--backbone", default=None, help="backbone to load it on (default: the one it records)")
        if name == "evaluate":
            p.add_argument("--config", help="YAML file with data options")
            p.add_argument("--split", choices=("test", "dev", "train"), default="test")
            _add_data_flags(p)
            p.set_defaults(func=cmd_evaluate)
        else:
            p.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
            p.add_argument("--file", help="text file, one input per line")
            p.add_argument("--json", action="store_true", help="print JSON lines with every label's probability")
            p.set_defaults(func=cmd_predict)

    p = sub.add_parser("generate", help="continue texts with a prompted causal LM adapter (e.g. on smollm2-135m)")
    p.add_argument("--adapter", required=True, help="adapter directory made on a causal LM backbone")
    p.add_argument("--backbone", default=None, help="backbone to load it on (default: the one it records)")
    p.add_argument("texts", nargs="+", help="texts to continue")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("demo", help="the main job: 16-shot P-tuning v2 on MR with MiniLM-L6, save, reload, classify")
    p.add_argument("--output", default="runs/demo", help="run directory")
    p.add_argument("--max-steps", type=int, default=150, help="training steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
    # subsystems own their subcommands; each module's add_commands registers them here
    from promptlearning.cli.adapt import add_commands as add_adapt_commands
    from promptlearning.cli.bench import add_commands as add_bench_commands
    from promptlearning.cli.library_commands import add_commands as add_meta_commands
    from promptlearning.cli.search import add_commands as add_search_commands

    add_bench_commands(sub)
    add_meta_commands(sub)
    add_adapt_commands(sub)
    add_search_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except PromptLearningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; saved adapters and checkpoints are intact (a killed train continues with --resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `promptlearning methods | head`: the reader left, which is not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
