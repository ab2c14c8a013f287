"""`promptlearning search ...`: discrete, RL and black-box prompt search, and the hybrid.

    promptlearning search strategies                      # every strategy and its options
    promptlearning search evolution --task mr --budget 3000 --output runs/mr-evo
    promptlearning search rl --task mr --option num_words=3 --output runs/mr-rl
    promptlearning search cma_es --task mr --option dim=20 --output runs/mr-cma
    promptlearning search evolution --task mr --output runs/mr-evo --resume   # continue a killed search
    promptlearning search hybrid --from runs/mr-evo --task mr --max-steps 30 --output runs/mr-hybrid
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError

_RUN_KEYS = ("budget", "seed", "max_length", "batch_size", "margin_weight", "score_split", "output_dir", "backbone",
             "seed_prompts", "options", "quiet")


def _search_flags(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    from promptlearning.cli.main import _add_data_flags
    from promptlearning.heads.base import head_kinds

    p.add_argument("--config", help="YAML file with any of these options (flags override it)")
    p.add_argument("--backbone", default=argparse.SUPPRESS, help="backbone (default smollm2-135m)")
    p.add_argument("--head", choices=head_kinds(), default=argparse.SUPPRESS,
                   help="a head with no trained parameters (default verbalizer; label_description on encoders)")
    p.add_argument("--label-words", default=argparse.SUPPRESS, metavar="YAML",
                   help="verbaliser words per label, e.g. \"{negative: [bad], positive: [good]}\"")
    p.add_argument("--max-length", type=int, default=argparse.SUPPRESS, help="max input tokens (default 96)")
    p.add_argument("--output", default=argparse.SUPPRESS, help="run directory: journal, best adapter, results")
    p.add_argument("--resume", action="store_true", help="continue the killed (or finished) search in --output exactly; "
                                                           "--budget may be raised to search further")
    if quiet:
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar or log lines")
    _add_data_flags(p)


def add_commands(sub: Any) -> None:
    """Register `promptlearning search` and its strategies on the CLI's subparsers."""
    from promptlearning.search.base import list_searchers
    from promptlearning.training import TrainConfig

    search = sub.add_parser("search", help="search readable or black-box prompts (evolution, rl, cma_es) and the "
                                           "discrete-to-soft hybrid",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = search.add_subparsers(dest="strategy", metavar="STRATEGY")
    inner.add_parser("strategies", help="list the search strategies and their options").set_defaults(
        func=cmd_strategies)
    for cls in list_searchers():
        p = inner.add_parser(cls.name, help=cls.summary)
        _search_flags(p)
        p.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="strategy option, repeatable (see `promptlearning search strategies`)")
        p.add_argument("--budget", type=int, default=argparse.SUPPRESS,
                       help="forward passes (rows through the backbone) the search may spend (default 2000)")
        p.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="seed of the search (default 42)")
        p.add_argument("--seed-prompt", action="append", dest="seed_prompt", metavar="TEMPLATE",
                       help="a starting prompt with {text_a}, repeatable (default: the task's hand-written one)")
        p.add_argument("--seed-prompts-file", default=None, help="a text file of starting prompts, one per line")
        p.add_argument("--batch-size", type=int, default=argparse.SUPPRESS, help="scoring batch size (default 32)")
        p.add_argument("--margin-weight", type=float, default=argparse.SUPPRESS,
                       help="fitness = accuracy + this x mean label margin (default 0.5)")
        p.add_argument("--score-split", choices=("dev", "train", "train+dev"), default=argparse.SUPPRESS,
                       help="examples candidates are scored on (default dev)")
        p.add_argument("--no-test", action="store_true", help="skip the test evaluation of the best prompt")
        p.set_defaults(func=cmd_search)
    p = inner.add_parser("hybrid", help="a discrete prompt's token embeddings initialise a soft prompt tuned by "
                                        "gradient (P-tuning slots, no encoder)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _search_flags(p, quiet=False)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_dir", help="a search's output directory (or its best/ adapter)")
    source.add_argument("--prompt", help="a discrete template with {text_a}")
    p.add_argument("--init", choices=("ids", "vocab", "random"), default="ids",
                   help="ids: the prompt's own token embeddings (the hybrid); vocab/random: the controls")
    p.add_argument("--no-baseline", action="store_true", help="skip the untrained-baseline evaluation")
    from promptlearning.cli.main import _add_dataclass_flags

    _add_dataclass_flags(p.add_argument_group("training"), TrainConfig)
    p.set_defaults(func=cmd_hybrid)
    search.set_defaults(func=lambda args: _no_strategy(search))


def _no_strategy(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_strategies(args: argparse.Namespace) -> int:
    from promptlearning.search.base import list_searchers

    for cls in list_searchers():
        print(f"{cls.name:12s} {cls.summary}")
        for line in cls.config_class.option_lines():
            print(line)
    print(f"{'hybrid':12s} a found prompt's token embeddings start a soft prompt tuned by gradient "
          "(promptlearning search hybrid --from DIR)")
    return 0


def _seed_prompts(args: argparse.Namespace, values: dict[str, Any]) -> list[str] | None:
    prompts = values.pop("seed_prompts", None)
    if prompts is not None and not isinstance(prompts, list):
        raise ConfigError("seed_prompts in the config file must be a list of templates")
    if args.seed_prompt:
        prompts = list(args.seed_prompt)
    if args.seed_prompts_file:
        try:
            lines = Path(args.seed_prompts_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"--seed-prompts-file {args.seed_prompts_file} cannot be read ({exc.strerror}); "
                              "check the path") from exc
        prompts = (prompts or []) + [ln.replace("\\n", "\n") for ln in lines if ln.strip()]
    return prompts


def search_config_from(args: argparse.Namespace) -> Any:
    """Merge the YAML file and the flags (flags win) into a SearchRunConfig."""
    from promptlearning.cli.main import _parse_label_words, _parse_option, _read_yaml
    from promptlearning.configs import build
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.single_task import DataConfig
    from promptlearning.search.runner import SearchRunConfig

    values = _read_yaml(args.config) if args.config else {}
    data_keys = {f.name for f in dataclasses.fields(DataConfig)}
    data = {k: values.pop(k) for k in list(values) if k in data_keys}
    head = values.pop("head", None) or {"kind": "verbalizer"}
    if not isinstance(head, dict):
        raise ConfigError("'head' in the config file must be a mapping, e.g. {kind: verbalizer}")
    if "label_words" in values:
        head["label_words"] = values.pop("label_words")
    seed_prompts = _seed_prompts(args, values)
    top = {k: values.pop(k) for k in list(values) if k in _RUN_KEYS}
    if values:
        raise ConfigError(f"unknown key(s) in {args.config}: {', '.join(sorted(values))}; valid: data keys, head, "
                          f"label_words, {', '.join(_RUN_KEYS)}")
    skip = {"command", "config", "resume", "func", "option", "strategy", "seed_prompt", "seed_prompts_file", "no_test"}
    for key, value in vars(args).items():
        if key in skip:
            continue
        if key in data_keys:
            data[key] = value
        elif key == "head":
            head["kind"] = value
        elif key == "label_words":
            head["label_words"] = _parse_label_words(value)
        elif key == "output":
            top["output_dir"] = value
        else:
            top[key] = value
    options = dict(top.pop("options", None) or {})
    for text in args.option or []:
        k, v = _parse_option(text)
        options[k] = v
    if "train_file" in data and "task" not in data:
        data["task"] = None
    return build(SearchRunConfig, {"strategy": args.strategy, "options": options, "seed_prompts": seed_prompts,
                                   "data": build(DataConfig, data, "data option(s)"),
                                   "head": HeadConfig.from_dict(head), "evaluate_test": not args.no_test, **top},
                 "search option(s)")


def cmd_search(args: argparse.Namespace) -> int:
    from promptlearning.search.runner import run_search

    cfg = search_config_from(args)
    run_search(cfg, resume=args.resume)
    return 0


def _prompt_from(directory: str) -> tuple[str, dict[str, Any]]:
    from promptlearning.adapters import read_adapter_config

    path = Path(directory)
    if (path / "best").is_dir():
        path = path / "best"
    config = read_adapter_config(path)
    template = config.get("template")
    if not template or "[P" in template:
        raise ConfigError(f"{path} holds no discrete prompt (template {template!r}); give the output of "
                          "`promptlearning search evolution` or `rl`, or --prompt TEMPLATE")
    return str(template), config


def _search_data(directory: str) -> dict[str, Any]:
    """The few-shot data settings a search ran with, so its hybrid trains on the same split by default."""
    from promptlearning.fileio import read_json
    from promptlearning.search.runner import CONFIG_FILE

    path = Path(directory)
    for candidate in (path / CONFIG_FILE, path.parent / CONFIG_FILE):
        if candidate.is_file():
            saved = read_json(candidate, lambda why: ConfigError(f"cannot read the search's settings: {why}"))
            data = saved.get("data", {})
            out = {k: data[k] for k in ("task", "train_file", "test_file", "shots", "dev_shots", "data_seed",
                                       "max_test") if data.get(k) is not None}
            if saved.get("max_length"):
                out["max_length"] = saved["max_length"]
            return out
    return {}


def cmd_hybrid(args: argparse.Namespace) -> int:
    from promptlearning.cli.main import experiment_from
    from promptlearning.runs.single_task import run_experiment
    from promptlearning.search.hybrid import hybrid_method_options

    values = dict(vars(args))
    from_dir, prompt, init = values.pop("from_dir"), values.pop("prompt"), values.pop("init")
    if from_dir:
        prompt, adapter = _prompt_from(from_dir)
        inherited = _search_data(from_dir)
        if "task" in values or "train_file" in values:  # the user chose the data: keep only the split settings
            inherited = {k: v for k, v in inherited.items() if k not in ("task", "train_file", "test_file")}
        taken = {k: v for k, v in inherited.items() if k not in values}
        values.update(taken)
        if taken:
            print("from the search: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in taken.items()))
        values.setdefault("backbone", adapter.get("backbone", {}).get("name", "smollm2-135m"))
        if "task" not in values and "train_file" not in values and adapter.get("task"):
            values["task"] = adapter["task"]
        if "head" not in values and "label_words" not in values:
            values["head"] = adapter.get("head", {}).get("kind", "verbalizer")
            words = adapter.get("head", {}).get("label_words")
            if words:
                import json

                values["label_words"] = json.dumps(words)
    values.setdefault("backbone", "smollm2-135m")
    values.setdefault("head", "verbalizer")
    values.setdefault("max_length", 96)
    values.pop("strategy", None)
    values["option"] = None
    cfg = experiment_from(argparse.Namespace(**values))
    from promptlearning.search.runner import shared_backbone

    backbone = shared_backbone(cfg.backbone)
    soft, options = hybrid_method_options(str(prompt), backbone.tokenizer, init, seed=cfg.train.seed)
    cfg.method, cfg.method_options, cfg.template = "p_tuning", options, soft
    cfg.train.eval_at_start = True  # the found prompt itself competes for best-on-dev: tuning can only help
    print(f"discrete prompt {prompt!r} -> soft template {soft!r} ({init} init)")
    result = run_experiment(cfg, resume=args.resume, backbone=backbone, baseline=not args.no_baseline)
    forwards = result["steps"] * cfg.train.batch_size
    print(f"forward passes: {forwards} forward+backward in training, plus {len(result['dev_curve'])} dev evaluations")
    if cfg.output_dir:
        print(f"adapter (best on dev) saved to {result['adapter']}")
    return 0
