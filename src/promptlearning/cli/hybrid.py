"""`promptlearning search hybrid`: a discrete prompt (found by a search, or given) starts a soft prompt
that is tuned by gradient: P-tuning slots initialised from the prompt's own token embeddings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from promptlearning.cli.options import (
    add_dataclass_flags,
    add_search_flags,
    experiment_config,
    experiment_values,
    parse_label_words,
)
from promptlearning.errors import ConfigError

# the data settings a hybrid takes over from its search (so both use the same split), in print order
SEARCH_DATA_KEYS = ("task", "train_file", "test_file", "shots", "dev_shots", "data_seed", "max_test")


def found_prompt(directory: str) -> tuple[str, dict[str, Any]]:
    """The discrete prompt a search saved (in ``directory`` or its ``best/``) and that adapter's config."""
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


def search_settings(directory: str) -> dict[str, Any]:
    """The few-shot data settings (and max length) a search ran with; empty when none are found."""
    from promptlearning.fileio import read_json
    from promptlearning.search.runner import CONFIG_FILE

    path = Path(directory)
    for candidate in (path / CONFIG_FILE, path.parent / CONFIG_FILE):
        if candidate.is_file():
            saved = read_json(candidate, lambda why: ConfigError(f"cannot read the search's settings: {why}"))
            data = saved.get("data", {})
            out = {k: data[k] for k in SEARCH_DATA_KEYS if data.get(k) is not None}
            if saved.get("max_length"):
                out["max_length"] = saved["max_length"]
            return out
    return {}


def _inherit(values: dict[str, Any], from_dir: str) -> str:
    """Fill what the user left open (file and flags) from the search in ``from_dir``; return its prompt."""
    prompt, adapter = found_prompt(from_dir)
    data = values["data"]
    inherited = search_settings(from_dir)
    if {"task", "train_file"} & set(data):  # the user chose the data: keep only the split settings
        inherited = {k: v for k, v in inherited.items() if k not in ("task", "train_file", "test_file")}
    taken = {}
    for key, value in inherited.items():
        place = values if key == "max_length" else data
        if key not in place:
            place[key] = taken[key] = value
    if taken:
        print("from the search: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in taken.items()))
    values.setdefault("backbone", adapter.get("backbone", {}).get("name", "smollm2-135m"))
    if not {"task", "train_file"} & set(data) and adapter.get("task"):
        data["task"] = adapter["task"]
    head = values["head"]
    if "kind" not in head and "label_words" not in head:
        head["kind"] = adapter.get("head", {}).get("kind", "verbalizer")
        words = adapter.get("head", {}).get("label_words")
        if words:
            head["label_words"] = parse_label_words(words)
    return prompt


def cmd_hybrid(args: argparse.Namespace) -> int:
    from promptlearning.backbones import shared_backbone
    from promptlearning.runs.single_task import run_experiment
    from promptlearning.search.hybrid import hybrid_experiment

    values = experiment_values(args, skip=("from_dir", "prompt", "init", "no_baseline"))
    prompt = _inherit(values, args.from_dir) if args.from_dir else args.prompt
    values.setdefault("backbone", "smollm2-135m")
    values["head"].setdefault("kind", "verbalizer")
    values.setdefault("max_length", 96)
    cfg = experiment_config(values)
    from promptlearning.cli.run_dir import check_output_dir

    check_output_dir(cfg.output_dir, resume=args.resume, overwrite=args.overwrite)
    backbone = shared_backbone(cfg.backbone, cfg.dtype)
    cfg = hybrid_experiment(cfg, str(prompt), backbone.tokenizer, args.init)  # dev scored at step 0 too
    print(f"discrete prompt {prompt!r} -> soft template {cfg.template!r} ({args.init} init)")
    result = run_experiment(cfg, resume=args.resume, backbone=backbone, baseline=not args.no_baseline)
    forwards = result["steps"] * cfg.train.batch_size
    print(f"forward passes: {forwards} forward+backward in training, plus {len(result['dev_curve'])} dev evaluations")
    if cfg.output_dir:
        print(f"adapter (best on dev) saved to {result['adapter']}")
    return 0


def add_parser(inner: Any) -> argparse.ArgumentParser:
    """`search hybrid`, registered among the search strategies."""
    from promptlearning.training import TrainConfig

    p = inner.add_parser("hybrid", help="a discrete prompt's token embeddings initialise a soft prompt tuned by "
                                        "gradient (P-tuning slots, no encoder)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_search_flags(p, quiet=False)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_dir", help="a search's output directory (or its best/ adapter)")
    source.add_argument("--prompt", help="a discrete template with {text_a}")
    p.add_argument("--init", choices=("ids", "vocab", "random"), default="ids",
                   help="ids: the prompt's own token embeddings (the hybrid); vocab/random: the controls")
    p.add_argument("--no-baseline", action="store_true", help="skip the untrained-baseline evaluation")
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig)
    p.set_defaults(func=cmd_hybrid)
    return p
