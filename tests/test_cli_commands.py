"""The command table, the options builder every command shares, renamed flags, and `train --continual`.

Each command comes from one table; `--help` lists them all; every command that takes options
reads `--config FILE` with flags winning; renamed flags keep their old spelling for one release
(with a note on stderr); the train flags of the trainer strategies come from the strategy table;
and `train --continual` honours or refuses, by name, every train option it is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from promptlearning.cli.commands import COMMANDS
from promptlearning.cli.main import build_parser, main
from promptlearning.cli.options import experiment_from, experiment_layout, experiment_values
from promptlearning.errors import ConfigError
from promptlearning.runs.single_task import DataConfig, ExperimentConfig
from promptlearning.training.strategies import configured_strategies

from .meta_toys import toy_tasks  # noqa: F401  (fixture)

# commands that take no options beyond what they act on (an adapter, a suite, texts): no --config
WITHOUT_OPTIONS = {"tasks", "backbones", "methods", "predict", "generate", "demo", "bench", "report", "inspect"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions)


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------- the table
def test_help_lists_every_command_of_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    names = [c.name for c in COMMANDS]
    assert len(set(names)) == len(names)
    assert set(_subparsers(build_parser())) == set(names)  # nothing registered outside the table
    for name in names:
        assert f"\n    {name}" in out, f"`promptlearning --help` does not list {name}"


def test_every_command_with_options_reads_a_config_file() -> None:
    commands = _subparsers(build_parser())
    for name, parser in commands.items():
        if name not in WITHOUT_OPTIONS and name != "search":
            assert "--config" in _flags(parser), f"`promptlearning {name}` has no --config"
    for name, parser in _subparsers(commands["search"]).items():
        if name != "strategies":
            assert "--config" in _flags(parser), f"`promptlearning search {name}` has no --config"


# ---------------------------------------------------------------------------- strategy flags from the table
def test_train_has_a_flag_for_every_strategy_option_routed_to_its_section() -> None:
    train = _flags(_subparsers(build_parser())["train"])
    routes = experiment_layout().routes
    for strategy in configured_strategies():
        assert strategy.config is not None
        for f in dataclasses.fields(strategy.config):
            name = strategy.flag_names.get(f.name, f.name)
            flag = "--" + name.replace("_", "-")
            assert flag in train and train[flag].dest == f.name, f"{strategy.name}: no {flag}"
            assert routes[f.name].section == strategy.section and routes[f.name].key == f.name


def test_a_default_run_serialises_as_before() -> None:
    """Bench job keys and results.json hold this dict: the table must not change a default run's."""
    cfg = experiment_from(_parse("train", "--task", "mr"))
    assert cfg.to_dict() == ExperimentConfig(data=DataConfig(task="mr")).to_dict()
    assert sorted(cfg.to_dict()) == sorted(["data", "backbone", "method", "method_options", "head", "train", "search",
                                            "tasks", "multitask", "meta", "distill", "max_length", "template",
                                            "output_dir"])


def test_strategy_options_from_flags_and_file(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("task: mr\nsearch: {budget: 2, arch_lr: 0.1}\nmeta: {inner_steps: 5}\n")
    cfg = experiment_from(_parse("train", "--config", str(config), "--arch-lr", "0.2", "--sampling", "uniform"))
    assert (cfg.search.budget, cfg.search.arch_lr) == (2, 0.2)  # the flag wins over the file
    assert cfg.meta.inner_steps == 5 and cfg.multitask.sampling == "uniform"


# ---------------------------------------------------------------------------- renamed flags
def test_layer_budget_and_its_old_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert experiment_from(_parse("train", "--task", "mr", "--layer-budget", "2")).search.budget == 2
    assert "deprecated" not in capsys.readouterr().err
    assert experiment_from(_parse("train", "--task", "mr", "--budget", "4")).search.budget == 4
    assert capsys.readouterr().err.strip() == ("note: --budget is deprecated and will be removed in the next "
                                               "release; use --layer-budget")


def test_max_forward_passes_and_its_old_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    from promptlearning.cli.search import search_config_from

    assert search_config_from(_parse("search", "rl", "--task", "mr", "--max-forward-passes", "300")).budget == 300
    capsys.readouterr()
    assert search_config_from(_parse("search", "rl", "--task", "mr", "--budget", "400")).budget == 400
    assert "--budget is deprecated" in capsys.readouterr().err


# ---------------------------------------------------------------------------- --config on adapt, continual, transfer
def test_continual_reads_a_config_file_and_flags_win(tmp_path: Path) -> None:
    from promptlearning.cli.continual import continual_config

    config = tmp_path / "continual.yaml"
    config.write_text(yaml.safe_dump({"tasks": ["mr", "cr"], "max_steps": 7, "num_tokens": 4, "scratch": False,
                                      "output": str(tmp_path / "out")}))
    cfg, tasks = continual_config(_parse("continual", "--config", str(config), "--num-tokens", "6"))
    assert tasks == ["mr", "cr"] and (cfg.steps, cfg.num_tokens, cfg.scratch) == (7, 6, False)
    assert cfg.output_dir == str(tmp_path / "out")
    cfg, tasks = continual_config(_parse("continual", "subj,mr", "--config", str(config), "--no-scratch"))
    assert tasks == ["subj", "mr"] and cfg.scratch is False
    cfg, _ = continual_config(_parse("continual", "mr,cr"))
    assert cfg.scratch is True and cfg.steps == 60  # the config class's defaults, written once


def test_transfer_reads_a_config_file_and_flags_win(tmp_path: Path) -> None:
    from promptlearning.cli.transfer import transfer_config

    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump({"target": "cr", "sources": ["a/best", "b/best"], "by": "prompt", "steps": 9}))
    cfg, target, sources, backbone = transfer_config(_parse("transfer", "--config", str(config), "--steps", "3"))
    assert (target, sources, backbone, cfg.by, cfg.steps) == ("cr", ["a/best", "b/best"], None, "prompt", 3)
    _, _, sources, _ = transfer_config(_parse("transfer", "--config", str(config), "--source", "c/best"))
    assert sources == ["c/best"]


def test_adapt_reads_a_config_file_and_flags_win(tmp_path: Path) -> None:
    from promptlearning.cli.adapt import adapt_options

    config = tmp_path / "adapt.yaml"
    config.write_text(yaml.safe_dump({"from": "runs/multi/best", "task": "subj", "shots": 8,
                                      "label_words": {0: ["bad"], 1: ["good"]}}))
    options = adapt_options(_parse("adapt", "--config", str(config), "--shots", "2"))
    assert (options.adapter, options.task, options.shots, options.steps) == ("runs/multi/best", "subj", 2, 30)
    assert options.label_words == {0: ["bad"], 1: ["good"]}


@pytest.mark.parametrize("command", [["adapt"], ["continual", "mr,cr"], ["transfer", "--target", "cr"],
                                     ["train"], ["search", "rl"]])
def test_an_unknown_config_key_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           command: list[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("bogus_key: 1\n")
    assert "bogus_key" in one_line_error(capsys, *command, "--config", str(config))


def test_missing_targets_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--from" in one_line_error(capsys, "adapt", "--task", "subj")
    assert "--target" in one_line_error(capsys, "transfer", "--source", "x")
    assert "tasks" in one_line_error(capsys, "continual")


# ---------------------------------------------------------------------------- train --continual
@pytest.mark.parametrize(("extra", "named"), [
    (["--method", "p_tuning_v2"], "--method p_tuning_v2"),
    (["--option", "init=vocab"], "--option init"),
    (["--head", "verbalizer"], "--head"),
    (["--label-words", "{negative: [bad], positive: [good]}"], "--head"),
    (["--resume"], "--resume"),
    (["--template", "Review: {text_a}"], "--template"),
    (["--tasks", "mr,cr"], "--tasks"),
    (["--weight-decay", "0.1"], "--weight-decay"),
    (["--layer-budget", "2"], "--layer-budget"),
    (["--sampling", "uniform"], "--sampling"),
])
def test_train_continual_refuses_what_it_cannot_honour(capsys: pytest.CaptureFixture[str], extra: list[str],
                                                       named: str) -> None:
    err = one_line_error(capsys, "train", "--continual", "mr,cr", "--backbone", "tiny-bert", *extra)
    assert "--continual" in err and named in err


def test_train_continual_maps_what_it_can(tmp_path: Path) -> None:
    from promptlearning.cli.train import continual_config_from
    from promptlearning.runs.continual import ContinualConfig

    args = _parse("train", "--continual", "mr,cr", "--method", "prompt_tuning", "--option", "num_tokens=3",
                  "--max-steps", "5", "--lr", "0.2", "--batch-size", "4", "--eval-every", "5", "--shots", "2",
                  "--data-seed", "21", "--seed", "7", "--max-test", "9", "--backbone", "tiny-bert",
                  "--max-length", "32", "--output", str(tmp_path), "--quiet", "--device", "cpu")
    cfg = continual_config_from(experiment_values(args, skip=("no_baseline", "continual")), resume=False)
    assert cfg == ContinualConfig(backbone="tiny-bert", shots=2, data_seed=21, seed=7, steps=5, num_tokens=3, lr=0.2,
                                  batch_size=4, eval_every=5, max_length=32, max_test=9, output_dir=str(tmp_path),
                                  device="cpu")
    with pytest.raises(ConfigError, match="--resume"):
        continual_config_from(experiment_values(args, skip=("no_baseline", "continual")), resume=True)


def test_train_continual_runs_with_the_options_it_takes(toy_tasks: list[str], tmp_path: Path,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "continual"
    assert main(["train", "--continual", "toy_movies,toy_films", "--backbone", "tiny-bert", "--shots", "4",
                 "--max-steps", "2", "--eval-every", "2", "--option", "num_tokens=3", "--method", "prompt_tuning",
                 "--output", str(out)]) == 0
    saved = json.loads((out / "continual.json").read_text())["config"]
    assert (saved["num_tokens"], saved["steps"], saved["shots"], saved["backbone"]) == (3, 2, 4, "tiny-bert")
