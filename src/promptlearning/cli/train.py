"""`promptlearning train`: few-shot train a prompt method (one task, several tasks, or tasks met in turn)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from promptlearning.cli.loading import add_dtype_flag
from promptlearning.cli.options import (
    add_config_flag,
    add_data_flags,
    add_dataclass_flags,
    add_strategy_flags,
    experiment_config,
    experiment_flag,
    experiment_values,
)
from promptlearning.cli.run_dir import check_output_dir, check_resume_settings
from promptlearning.errors import ConfigError

#: data options that describe a user's own file, which a registered task or a list of them does not read
FILE_OPTIONS = ("train_file", "test_file", "text_column", "text_b_column", "label_column", "description")


def check_data_sources(values: dict[str, Any]) -> None:
    """Refuse data options the run would ignore: ``--tasks`` with a file or ``--task``, ``--task`` with ``--test-file``.

    Each used to train and score on the registered tasks' own splits with exit 0, while the user believed
    their file was read.
    """
    data = values.get("data") or {}
    given = [f"--{k.replace('_', '-')}" for k in FILE_OPTIONS if data.get(k)]
    if values.get("tasks") and (given or data.get("task")):
        raise ConfigError(f"--tasks trains on registered tasks and reads no {', '.join(given) or '--task'}; drop "
                          f"{'them' if len(given) > 1 else 'it'}, or train one run per data source")
    if data.get("task") and data.get("test_file") and not data.get("train_file"):
        raise ConfigError(f"--task {data['task']} is scored on its own test split, not on --test-file; drop "
                          "--test-file, then score the adapter on your file with `promptlearning evaluate --adapter "
                          "RUN/best --test-file FILE`")


def _noted(code: int, values: dict[str, Any], cfg: Any) -> int:
    """After a finished run, say on stderr what it did that nothing on the command line asked for: its
    default task, no saving (as the last lines, so an error never comes with a note before it)."""
    from promptlearning.launcher import is_main_process

    if code != 0 or not is_main_process():
        return code
    data = values.get("data") or {}
    if not (data.get("task") or data.get("train_file") or values.get("tasks")):
        print(f"note: no --task or --train-file was given, so this trained on {cfg.data.task}, the default task",
              file=sys.stderr)
    if not cfg.output_dir:
        print("note: no --output was given, so the adapter was not saved; add --output RUN_DIR to keep it",
              file=sys.stderr)
    return code


def cmd_train(args: argparse.Namespace) -> int:
    if getattr(args, "continual", None):
        return train_continual(args)
    values = experiment_values(args, skip=("no_baseline",))
    check_data_sources(values)
    cfg = experiment_config(values)
    if args.resume and not cfg.output_dir:
        raise ConfigError("--resume needs --output, the directory of the run to continue")
    check_output_dir(cfg.output_dir, resume=args.resume, overwrite=args.overwrite)
    if args.resume:
        check_resume_settings(cfg.output_dir, cfg.method, cfg.train.to_dict())
    from promptlearning.cli.generation import generation_run, train_generation
    from promptlearning.cli.tag import tagging_run, train_tagging

    if cfg.ensemble is not None:  # N prompts answered as one adapter: runs.ensemble drives it
        from promptlearning.runs.ensemble import check_ensemble_size, run_ensemble

        check_ensemble_size(cfg.ensemble)
        if tagging_run(cfg):
            raise ConfigError("--ensemble combines one label per input; a tagging task labels every word: "
                              "drop --ensemble")
        if generation_run(cfg):
            raise ConfigError("--ensemble combines label probabilities; a generation task writes text: drop --ensemble")
        result = run_ensemble(cfg, resume=args.resume, baseline=not args.no_baseline)
    elif tagging_run(cfg):  # one tag per word (a tagging task or head): runs.tagging drives it
        return _noted(train_tagging(args), values, cfg)
    elif generation_run(cfg):  # input -> target text (a generation task or head): runs.generation drives it
        return _noted(train_generation(args), values, cfg)
    elif cfg.tasks:
        from promptlearning.runs.multitask import run_multitask

        result = run_multitask(cfg, resume=args.resume)
    else:
        from promptlearning.runs.single_task import run_experiment

        result = run_experiment(cfg, resume=args.resume, baseline=not args.no_baseline)
    if cfg.output_dir:
        what = f"ensemble of {cfg.ensemble} prompts (each best on dev)" if cfg.ensemble else "adapter (best on dev)"
        print(f"{what} saved to {result['adapter']}; metrics in {cfg.output_dir}/metrics.jsonl")
    return _noted(0, values, cfg)


# ---------------------------------------------------------------------------- train --continual
# what `train --continual` takes from the train options, as (section, key) -> ContinualConfig field
CONTINUAL_FROM_TRAIN = {("data", "shots"): "shots", ("data", "data_seed"): "data_seed",
                        ("data", "max_test"): "max_test", ("train", "seed"): "seed", ("train", "max_steps"): "steps",
                        ("train", "lr"): "lr", ("train", "batch_size"): "batch_size",
                        ("train", "eval_every"): "eval_every", ("train", "device"): "device",
                        ("train", "quiet"): None,  # its runs are quiet already
                        (None, "backbone"): "backbone", (None, "max_length"): "max_length",
                        (None, "output_dir"): "output_dir"}


def continual_config_from(values: dict[str, Any], resume: bool) -> Any:
    """The ContinualConfig of `train --continual`; every train option it cannot honour is refused by name."""
    from promptlearning.runs.continual import METHOD, ContinualConfig

    if resume:
        raise ConfigError("train --continual cannot resume (it trains every task again); drop --resume")
    from promptlearning.launcher import launched_rank

    if launched_rank()[1] > 1:
        raise ConfigError("train --continual runs in one process (each launched process would run it whole); "
                          "run it without torchrun/accelerate launch")
    method = values.pop("method", METHOD)
    if method != METHOD:
        raise ConfigError(f"train --continual learns {METHOD} prompts, one per task, for its library; "
                          f"drop --method {method}")
    head = values.pop("head", {})
    if head.get("kind", "classification") != "classification" or set(head) - {"kind"}:
        raise ConfigError("train --continual gives every task its own classification head; drop --head "
                          "(and --label-words, --pooling, --head-dropout)")
    options = dict(values.pop("method_options", {}))
    out: dict[str, Any] = {}
    if "num_tokens" in options:
        out["num_tokens"] = options.pop("num_tokens")
    if options:
        raise ConfigError(f"train --continual takes only --option num_tokens=N (the prompt length); "
                          f"drop --option {', '.join(sorted(options))}")
    ignored = []
    for key, value in values.items():
        for sub, sub_value in (value.items() if isinstance(value, dict) else [(None, value)]):
            place = (key, sub) if sub is not None else (None, key)
            if place not in CONTINUAL_FROM_TRAIN:
                ignored.append(experiment_flag(*place))
            elif CONTINUAL_FROM_TRAIN[place] is not None:
                out[str(CONTINUAL_FROM_TRAIN[place])] = sub_value
    if ignored:
        raise ConfigError(f"train --continual does not use {', '.join(sorted(ignored))}; drop "
                          f"{'it' if len(ignored) == 1 else 'them'} (`promptlearning continual --help` lists its options)")
    from promptlearning.configs import build

    return build(ContinualConfig, out, "continual option(s)")


def train_continual(args: argparse.Namespace) -> int:
    """`train --continual a,b,c`: meet the tasks one at a time with a prompt library."""
    from promptlearning.cli.options import comma_list
    from promptlearning.runs.continual import run_continual

    values = experiment_values(args, skip=("no_baseline", "continual"))
    config = continual_config_from(values, args.resume)
    run_continual(comma_list(args.continual), config)
    return 0


# ---------------------------------------------------------------------------- the parser
def add_parser(sub: Any) -> argparse.ArgumentParser:
    from promptlearning.heads.base import POOLINGS, head_kinds
    from promptlearning.training import TrainConfig
    from promptlearning.training.config import TRACKERS

    p = sub.add_parser("train", help="few-shot train a prompt method and save the adapter",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_flag(p)
    p.add_argument("--method", default=argparse.SUPPRESS, help="prompt method (see `promptlearning methods`)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="method option, repeatable, e.g. --option num_tokens=20 --option layers=[3,4,5]")
    p.add_argument("--backbone", default=argparse.SUPPRESS,
                   help="packaged name, local directory or hub id; an image CNN at another input size: NAME@SIZE "
                        "(e.g. efficientnet-lite0@112)")
    p.add_argument("--max-length", type=int, default=argparse.SUPPRESS, help="max input tokens (default 64)")
    add_dtype_flag(p, "float32")
    p.add_argument("--truncation", choices=("head", "tail", "head+tail"), default=argparse.SUPPRESS,
                   help="which part of an input longer than --max-length is kept: its start (head, default), its end "
                        "(tail), or a quarter from the start and the rest from the end (head+tail); saved in the "
                        "adapter, so evaluate and predict cut the same way")
    p.add_argument("--head", choices=head_kinds(), default=argparse.SUPPRESS,
                   help="classification (pooled linear layer, default) or verbalizer (LM-head scores of label words; "
                        "needs a causal LM such as smollm2-135m); token_classification tags words, language_modeling "
                        "trains generation on input -> target pairs (see docs/generation.md)")
    p.add_argument("--label-words", default=argparse.SUPPRESS, metavar="YAML",
                   help="verbaliser words per label, e.g. \"{negative: [bad, awful], positive: [good, great]}\" "
                        "(default: the label names)")
    p.add_argument("--template", default=argparse.SUPPRESS,
                   help="input template with {text_a} (and {text_b}, [Pn] slots for p_tuning), e.g. "
                        "\"Review: {text_a} Sentiment:\"")
    p.add_argument("--pooling", choices=POOLINGS, default=argparse.SUPPRESS, help="head pooling (default auto)")
    p.add_argument("--head-dropout", type=float, default=argparse.SUPPRESS, help="dropout before the head")
    p.add_argument("--demonstrations", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="generation (--head language_modeling): write N training pairs before each input, the fixed "
                        "in-context prompt (with --method fixed_prompt: the baseline with demonstrations)")
    p.add_argument("--output", default=argparse.SUPPRESS, help="run directory: best adapter, checkpoint, metrics")
    p.add_argument("--resume", action="store_true", help="continue the killed run in --output exactly")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --output that holds an earlier run, replacing its adapter and checkpoint "
                        "(without it such a folder is refused)")
    p.add_argument("--no-baseline", action="store_true", help="skip the untrained-baseline evaluation")
    p.add_argument("--ensemble", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="train N >= 2 prompts (seed + i, init_seed + i) and save them as one adapter that answers "
                        "with their mean probabilities in one batched forward (docs/ensembles.md)")
    add_data_flags(p)
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig, choices={"report_to": TRACKERS})
    add_strategy_flags(p)
    p.add_argument("--continual", default=argparse.SUPPRESS, metavar="A,B,...",
                   help="meet these tasks one at a time with a prompt library (forgetting and transfer table)")
    p.set_defaults(func=cmd_train)
    return p
