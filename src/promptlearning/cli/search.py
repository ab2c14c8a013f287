"""`promptlearning search ...`: discrete, RL and black-box prompt search (and the hybrid, in :mod:`.hybrid`).

    promptlearning search strategies                      # every strategy and its options
    promptlearning search evolution --task mr --max-forward-passes 3000 --output runs/mr-evo
    promptlearning search rl --task mr --option num_words=3 --output runs/mr-rl
    promptlearning search cma_es --task mr --option dim=20 --output runs/mr-cma
    promptlearning search evolution --task mr --output runs/mr-evo --resume   # continue a killed search
    promptlearning search hybrid --from runs/mr-evo --task mr --max-steps 30 --output runs/mr-hybrid
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from promptlearning.cli.options import (
    Layout,
    Route,
    add_deprecated_flag,
    add_search_flags,
    config_file,
    given,
    merge_options,
    parse_label_words,
    parse_options,
    read_text_file,
)
from promptlearning.errors import ConfigError

# the SearchRunConfig keys a search's --config file may hold at its top level (besides the data keys)
RUN_KEYS = ("budget", "seed", "max_length", "batch_size", "margin_weight", "score_split", "output_dir", "backbone",
            "seed_prompts", "quiet")


def cmd_strategies(args: argparse.Namespace) -> int:
    from promptlearning.search.base import list_searchers

    for cls in list_searchers():
        print(f"{cls.name:12s} {cls.summary}")
        for line in cls.config_class.option_lines():
            print(line)
    print(f"{'hybrid':12s} a found prompt's token embeddings start a soft prompt tuned by gradient "
          "(promptlearning search hybrid --from DIR)")
    return 0


def _seed_prompts(args: argparse.Namespace, prompts: Any) -> list[str] | None:
    """The config file's seed_prompts, replaced by --seed-prompt flags, plus --seed-prompts-file lines."""
    if prompts is not None and not isinstance(prompts, list):
        raise ConfigError("seed_prompts in the config file must be a list of templates")
    if args.seed_prompt:
        prompts = list(args.seed_prompt)
    if args.seed_prompts_file:
        lines = read_text_file(args.seed_prompts_file, "--seed-prompts-file",
                               "a text file of prompts with {text_a}, one per line").splitlines()
        prompts = (prompts or []) + [ln.replace("\\n", "\n") for ln in lines if ln.strip()]
    return prompts


def search_layout() -> Layout:
    from promptlearning.runs.single_task import DataConfig

    return Layout(sections=("head", "options"),
                  flat={**{f.name: "data" for f in dataclasses.fields(DataConfig)}, "label_words": "head"},
                  top=RUN_KEYS,
                  routes={"head": Route("head", "kind"), "label_words": Route("head", "label_words", parse_label_words),
                          "output": Route(None, "output_dir")},
                  file_aliases={"max_forward_passes": "budget"})


def search_config_from(args: argparse.Namespace) -> Any:
    """Merge the YAML file and the flags (flags win) into a SearchRunConfig."""
    from promptlearning.configs import build
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.single_task import DataConfig
    from promptlearning.search.runner import SearchRunConfig

    flags = given(args, skip=("seed_prompt", "seed_prompts_file", "no_test"))
    values = merge_options(config_file(args), flags, search_layout(), f"config file {args.config}")
    values["options"].update(parse_options(args.option))
    values["head"].setdefault("kind", "verbalizer")
    values["seed_prompts"] = _seed_prompts(args, values.get("seed_prompts"))
    data = values.pop("data")
    if "train_file" in data and "task" not in data:
        data["task"] = None
    return build(SearchRunConfig, {**values, "strategy": args.strategy, "data": build(DataConfig, data, "data option(s)"),
                                   "head": HeadConfig.from_dict(values["head"]), "evaluate_test": not args.no_test},
                 "search option(s)")


def cmd_search(args: argparse.Namespace) -> int:
    from promptlearning.cli.run_dir import SEARCH_FILES, check_output_dir
    from promptlearning.search.runner import run_search

    config = search_config_from(args)
    check_output_dir(config.output_dir, resume=args.resume, overwrite=args.overwrite, files=SEARCH_FILES)
    run_search(config, resume=args.resume)
    return 0


def _no_strategy(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """`promptlearning search` with one subcommand per registered strategy, `strategies` and `hybrid`."""
    from promptlearning.cli import hybrid
    from promptlearning.search.base import list_searchers

    search = sub.add_parser("search", help="search readable or black-box prompts (evolution, rl, cma_es) and the "
                                           "discrete-to-soft hybrid",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = search.add_subparsers(dest="strategy", metavar="STRATEGY")
    inner.add_parser("strategies", help="list the search strategies and their options").set_defaults(
        func=cmd_strategies)
    for cls in list_searchers():
        p = inner.add_parser(cls.name, help=cls.summary)
        add_search_flags(p)
        p.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="strategy option, repeatable (see `promptlearning search strategies`)")
        p.add_argument("--max-forward-passes", dest="budget", type=int, default=argparse.SUPPRESS,
                       help="forward passes (rows through the backbone) the search may spend; formerly --budget "
                            "(default 2000)")
        add_deprecated_flag(p, "--budget", "--max-forward-passes", "budget", int)
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
    hybrid.add_parser(inner)
    search.set_defaults(func=lambda args: _no_strategy(search))
    return search
