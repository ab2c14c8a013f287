"""The options builder every command uses: flags, ``--config FILE`` and the one YAML-plus-flags merger.

Every command that takes options accepts ``--config FILE`` (YAML); flags given on the command
line win over the file, the file over the defaults. Option flags default to
``argparse.SUPPRESS``, so ``vars(args)`` holds exactly the flags the user gave, and the defaults
live once, in the config dataclasses. :func:`merge_options` puts both sources into one nested
mapping by a :class:`Layout`, the same way for every command; :func:`experiment_from` builds
the :class:`~promptlearning.runs.single_task.ExperimentConfig` of ``train``, ``evaluate`` and
``search hybrid`` from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promptlearning.errors import ConfigError

# flags that steer a command but are no option of its config
NOT_OPTIONS = frozenset({"command", "config", "func", "resume", "overwrite", "option", "strategy"})


# ---------------------------------------------------------------------------- parsing values
def parse_option(text: str) -> tuple[str, Any]:
    """``--option KEY=VALUE``: the value is read as YAML (numbers, lists, booleans), else kept as text."""
    if "=" not in text:
        raise ConfigError(f"--option {text!r} is not KEY=VALUE; write e.g. --option num_tokens=20")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def parse_options(texts: Iterable[str] | None) -> dict[str, Any]:
    return dict(parse_option(text) for text in texts or [])


def parse_label_words(text: str | dict[Any, Any]) -> dict[str, list[str]]:
    """``--label-words "{negative: [bad], positive: [good]}"`` (or that mapping from a file): label -> its words."""
    try:
        value = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as exc:
        raise ConfigError("--label-words must be YAML like '{negative: [bad], positive: [good]}'") from exc
    if not isinstance(value, dict):
        raise ConfigError("--label-words must map each label to words, e.g. '{negative: [bad], positive: [good]}'")
    return {str(k): [str(w) for w in (v if isinstance(v, list) else [v])] for k, v in value.items()}


def comma_list(text: Any) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (a YAML list passes through)."""
    if isinstance(text, list):
        return [str(t) for t in text]
    return [t.strip() for t in str(text).split(",") if t.strip()]


def read_text_file(path: str, flag: str, what: str = "a UTF-8 text file") -> str:
    """The text of the file a flag names; a missing path, a folder, unreadable or non-UTF-8 bytes are
    refused in one line naming the flag (every command reads its input files through this)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{flag} {path} does not exist; give {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{flag} {path} is a folder; give {what}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{flag} {path} is not UTF-8 (byte {exc.start}); save it as UTF-8 (e.g. iconv -t utf-8)"
                          ) from None
    except OSError as exc:
        raise ConfigError(f"{flag} {path} cannot be read ({exc.strerror or exc}); give {what}") from None


def read_yaml(path: str) -> dict[str, Any]:
    """The mapping in a ``--config`` file (empty for an empty file)."""
    try:
        data = yaml.safe_load(read_text_file(path, "--config", "a YAML file of option: value"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML ({type(exc).__name__}); fix its syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return data


def config_file(args: argparse.Namespace) -> dict[str, Any]:
    path = getattr(args, "config", None)
    return read_yaml(path) if path else {}


def given(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The option flags the user gave (they default to SUPPRESS, so absent ones are not in ``args``)."""
    left_out = NOT_OPTIONS | set(skip)
    return {k: v for k, v in vars(args).items() if k not in left_out}


# ---------------------------------------------------------------------------- the one merger
@dataclass(frozen=True)
class Route:
    """Where one flag's value goes: ``section`` (None: the top level), under ``key``, after ``convert``."""

    section: str | None
    key: str
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Layout:
    """How a command's options nest, in its YAML file and from its flags.

    The file holds ``sections`` as mappings (``train: {lr: 0.1}``), keys of ``flat`` at the top
    level although they belong to a section (``task: mr`` goes to ``data``), and ``top`` keys.
    A flag goes where ``routes`` says, else to the section ``flat`` names, else to the top."""

    sections: tuple[str, ...] = ()
    flat: Mapping[str, str] = field(default_factory=dict)  # key -> its section
    top: tuple[str, ...] = ()
    routes: Mapping[str, Route] = field(default_factory=dict)  # flag dest -> where it goes
    file_aliases: Mapping[str, str] = field(default_factory=dict)  # another spelling of a file key -> the key


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' in the config file must be a mapping of name: value (got {type(value).__name__})")
    return dict(value)


def merge_options(file_values: Mapping[str, Any], flags: Mapping[str, Any], layout: Layout,
                  where: str = "the config file") -> dict[str, Any]:
    """Defaults < file < flags, as one nested mapping: a dict per section plus the top-level keys.

    Unknown file keys are refused with the valid ones; a section holds only what was given, so
    the config classes keep the defaults (written once, there)."""
    out: dict[str, Any] = {name: {} for name in {*layout.sections, *layout.flat.values()}}
    unknown = []
    for raw_key, value in file_values.items():
        key = layout.file_aliases.get(raw_key, raw_key)
        if key in layout.sections:
            out[key].update(_mapping(value, key))
        elif key in layout.flat:
            out[layout.flat[key]][key] = value
        elif key in layout.top:
            out[key] = value
        else:
            unknown.append(raw_key)
    if unknown:
        valid = [*sorted(layout.flat), *layout.top, *layout.sections]
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}; valid: {', '.join(valid)}")
    for dest, value in flags.items():
        route = layout.routes.get(dest) or (Route(layout.flat[dest], dest) if dest in layout.flat else Route(None, dest))
        converted = route.convert(value) if route.convert else value
        if route.section is None:
            out[route.key] = converted
        else:
            out.setdefault(route.section, {})[route.key] = converted
    return out


def flat_config(cls: type, args: argparse.Namespace, *, routes: Mapping[str, Route] | None = None,
                file_aliases: Mapping[str, str] | None = None, extra_keys: Sequence[str] = ()) -> tuple[Any, dict[str, Any]]:
    """A flat config dataclass (no sections, e.g. ContinualConfig) from ``--config`` and the flags, and
    the given values of ``extra_keys``: the command's options that are no field of ``cls``."""
    from promptlearning.configs import build

    fields = tuple(f.name for f in dataclasses.fields(cls))
    layout = Layout(top=(*fields, *extra_keys), routes=routes or {}, file_aliases=file_aliases or {})
    values = merge_options(config_file(args), given(args), layout, f"config file {getattr(args, 'config', '')}")
    extra = {k: values.pop(k) for k in extra_keys if k in values}
    return build(cls, values, "option(s)"), extra


# ---------------------------------------------------------------------------- building flags
def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file with any of these options (flags override it)")


def _flag_type(annotation: Any) -> Callable[[str], Any]:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    first = text.split("|")[0].strip()
    return {"int": int, "float": float}.get(first, str)


def _is_bool(annotation: Any) -> bool:
    return annotation in ("bool", bool)


def add_dataclass_flags(parser: argparse.ArgumentParser | Any, cls: Any, skip: Sequence[str] = (),
                        names: Mapping[str, str] | None = None,
                        choices: Mapping[str, Sequence[str]] | None = None) -> None:
    """One flag per field of ``cls`` (its help text, its default shown); ``names`` renames a field's flag."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        option = flag((names or {}).get(f.name, f.name))
        help_text = str(f.metadata.get("help", ""))
        if _is_bool(f.type):
            parser.add_argument(option, dest=f.name, action="store_true", default=argparse.SUPPRESS, help=help_text)
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        allowed = (choices or {}).get(f.name)
        parser.add_argument(option, dest=f.name, type=_flag_type(f.type), default=argparse.SUPPRESS, choices=allowed,
                            metavar=None if allowed else option[2:].replace("-", "_").upper(),
                            help=help_text if "(default" in help_text or "no default" in help_text else f"{help_text} (default: {default})")


class DeprecatedFlag(argparse.Action):
    """The old spelling of a renamed flag: still works for one release, with a one-line note on stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"note: {option_string} is deprecated and will be removed in the next release; use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_flag(parser: argparse.ArgumentParser | Any, old: str, new: str, dest: str,
                        type: Callable[[str], Any] = str) -> None:
    """Accept ``old`` as a hidden synonym of ``new`` (same destination), noting the rename on stderr."""
    parser.add_argument(old, dest=dest, type=type, action=DeprecatedFlag, new=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """The task and few-shot data flags of ``train``, ``evaluate`` and ``search``."""
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
    g.add_argument("--max-test", type=int, default=argparse.SUPPRESS,
                   help="evaluate on a fixed random subset of N test examples")
    g.add_argument("--allow-overlap", action="store_true", default=argparse.SUPPRESS,
                   help="score a --test-file that shares texts with --train-file (refused otherwise)")


def add_search_flags(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    """The flags of every search command and of the hybrid: config, backbone, head, data, output, resume."""
    from promptlearning.heads.base import head_kinds

    add_config_flag(p)
    p.add_argument("--backbone", default=argparse.SUPPRESS, help="backbone (default smollm2-135m)")
    p.add_argument("--head", choices=head_kinds(), default=argparse.SUPPRESS,
                   help="a head with no trained parameters (default verbalizer; label_description on encoders)")
    p.add_argument("--label-words", default=argparse.SUPPRESS, metavar="YAML",
                   help="verbaliser words per label, e.g. \"{negative: [bad], positive: [good]}\"")
    p.add_argument("--max-length", type=int, default=argparse.SUPPRESS, help="max input tokens (default 96)")
    p.add_argument("--output", default=argparse.SUPPRESS, help="run directory: journal, best adapter, results")
    p.add_argument("--resume", action="store_true", help="continue the killed (or finished) search in --output "
                                                           "exactly; --max-forward-passes may be raised to search further")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --output that holds an earlier search or run (refused without it)")
    if quiet:
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar or log lines")
    add_data_flags(p)


def add_strategy_flags(parser: argparse.ArgumentParser) -> None:
    """One flag group per trainer strategy with options, from the strategy table (renamed flags keep
    their old spelling for one release)."""
    from promptlearning.training.strategies import configured_strategies

    for strategy in configured_strategies():
        group = parser.add_argument_group(strategy.flag_group or f"{strategy.name} training")
        add_dataclass_flags(group, strategy.config, names=strategy.flag_names)
        for name, new_name in strategy.flag_names.items():
            field_type = next(f.type for f in dataclasses.fields(strategy.config) if f.name == name)  # type: ignore[arg-type]
            add_deprecated_flag(group, flag(name), flag(new_name), name, _flag_type(field_type))


# ---------------------------------------------------------------------------- the experiment config
def experiment_layout() -> Layout:
    """Where the options of ``train`` (and ``evaluate``, ``search hybrid``) go in an ExperimentConfig."""
    from promptlearning.runs.single_task import DataConfig
    from promptlearning.training import TrainConfig
    from promptlearning.training.strategies import configured_strategies

    strategies = configured_strategies()
    routes = {f.name: Route("train", f.name) for f in dataclasses.fields(TrainConfig)}
    for strategy in strategies:
        routes.update({f.name: Route(strategy.section, f.name) for f in dataclasses.fields(strategy.config)})  # type: ignore[arg-type]
    routes.update({
        "tasks": Route(None, "tasks", comma_list), "output": Route(None, "output_dir"),
        "head": Route("head", "kind"), "label_words": Route("head", "label_words", parse_label_words),
        "pooling": Route("head", "pooling"), "head_dropout": Route("head", "dropout"),
    })
    return Layout(sections=("train", "head", "method_options", *(s.section for s in strategies if s.section)),
                  flat={f.name: "data" for f in dataclasses.fields(DataConfig)},
                  top=("backbone", "method", "max_length", "output_dir", "template", "tasks", "truncation", "dtype",
                       "ensemble", "demonstrations"),
                  routes=routes)


def experiment_flag(section: str | None, key: str) -> str:
    """The `train` flag that sets ``key`` of ``section`` (None: the top level), for messages."""
    from promptlearning.training.strategies import configured_strategies

    renamed = {(s.section, name): new for s in configured_strategies() for name, new in s.flag_names.items()}
    if (section, key) in renamed:
        return flag(renamed[(section, key)])
    dests = [dest for dest, route in experiment_layout().routes.items() if (route.section, route.key) == (section, key)]
    return flag(dests[0] if dests else key)


def experiment_values(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The ExperimentConfig's values the user gave (file and flags, nested), before defaults."""
    values = merge_options(config_file(args), given(args, skip), experiment_layout(),
                           f"config file {getattr(args, 'config', '')}")
    values["method_options"].update(parse_options(getattr(args, "option", None)))
    return values


def experiment_from(args: argparse.Namespace, skip: Iterable[str] = ("no_baseline", "continual")) -> Any:
    """Merge defaults, the YAML file and the flags (in that order) into an ExperimentConfig."""
    return experiment_config(experiment_values(args, skip))


def experiment_config(values: dict[str, Any]) -> Any:
    """Build the ExperimentConfig (each part checked by its own class) from :func:`experiment_values`."""
    from promptlearning.configs import build
    from promptlearning.heads.base import HeadConfig
    from promptlearning.runs.single_task import DataConfig, ExperimentConfig
    from promptlearning.training import TrainConfig
    from promptlearning.training.strategies import configured_strategies

    values = dict(values)
    data = values.pop("data")
    if "train_file" in data and data.get("task"):
        raise ConfigError("give either --task (a registered task) or --train-file (your data), not both")
    if "train_file" in data and "task" not in data:
        data["task"] = None
    parts: dict[str, Any] = {"data": build(DataConfig, data, "data option(s)"),
                             "train": TrainConfig.from_dict(values.pop("train")),
                             "head": HeadConfig.from_dict(values.pop("head"))}
    for strategy in configured_strategies():
        assert strategy.section is not None and strategy.config is not None
        parts[strategy.section] = build(strategy.config, values.pop(strategy.section), f"{strategy.section} option(s)")
    return build(ExperimentConfig, {**values, **parts}, "option(s)")


#: ``--address`` of the commands that can run on Ray (bench, tune)
RAY_ADDRESS_HELP = ("with --executor ray: the cluster to join (e.g. auto, or ray://HOST:10001); default: RAY_ADDRESS, "
                    "else a new local cluster")

