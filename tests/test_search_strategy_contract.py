"""The contract every registered search strategy keeps, on an encoder and on a decoder.

Parametrised over ``list_searchers()``, so a new strategy is held to it by registering: on
tiny-bert (label-description head) and tiny-llama (verbaliser head) each strategy runs within a
small forward-pass budget and never exceeds it, leaves the backbone as it was, returns a prompt
the scorer accepts (its saved adapter scores exactly the best journalled score), is
deterministic for a seed, and resumes a killed search by replaying its journal to the very
result of an uninterrupted run. A strategy whose defaults are slow gets small options in
``SMALL``; one that cannot apply to a backbone says so with a ``ConfigError`` and an entry here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.adapters import WEIGHTS_FILE
from promptlearning.backbones import Backbone
from promptlearning.data.loading import DataConfig, load_data, make_split
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.search.base import get_searcher, list_searchers
from promptlearning.search.budget import JOURNAL_FILE
from promptlearning.search.runner import SearchRunConfig, run_search
from promptlearning.search.scoring import PromptScorer, Score, count_rows

from .conftest import toy_csv
from .resume_helper import (
    Cut,
    assert_same_files,
    assert_same_values,
    cli_killed_then_resumed,
    run_interrupted_then_resumed,
)

HEADS = {"bert": HeadConfig(kind="label_description"),
         "llama": HeadConfig(kind="verbalizer", label_words={"neg": ["bad"], "pos": ["good"]})}
#: options that keep a strategy's rounds small; a strategy not listed runs with its defaults
SMALL: dict[str, dict[str, Any]] = {"evolution": {"population": 4}, "rl": {"samples": 4, "num_words": 2},
                                    "cma_es": {"dim": 3, "popsize": 4}}
ROUNDS = 3  # generations / steps the budget pays for
SEED_PROMPT = "Review: {text_a} It was"
SEED = 3
RESULT_KEYS = ("best_prompt", "template", "forwards", "evaluations", "dev_fitness", "dev_accuracy", "dev_margin",
               "top", "curve", "converged", "extra")
CASES = [(cls.name, backbone) for cls in list_searchers() for backbone in HEADS]


@dataclass
class Reference:
    """One uninterrupted search of a strategy on a backbone, and how to run it again."""

    strategy: str
    backbone: Backbone
    config: Callable[[Path, int], SearchRunConfig]  # (output directory, seed) -> the run's settings
    budget: int
    directory: Path
    result: dict[str, Any]
    rows: int  # rows that went through the backbone during the search
    backbone_untouched: bool

    def run(self, out: Path, seed: int = SEED, resume: bool = False) -> dict[str, Any]:
        return run_search(self.config(out, seed), resume=resume, backbone=self.backbone, log=lambda _: None)

    def journal(self, directory: Path | None = None) -> list[dict[str, Any]]:
        text = ((directory or self.directory) / JOURNAL_FILE).read_text()
        return [json.loads(line) for line in text.splitlines()]


def settings(data_file: Path, strategy: str, backbone: str, budget: int, out: Path, seed: int) -> SearchRunConfig:
    return SearchRunConfig(strategy=strategy, options=dict(SMALL.get(strategy, {})), backbone=f"tiny-{backbone}",
                           head=HEADS[backbone], budget=budget, data=DataConfig(task=None, train_file=str(data_file),
                                                                                shots=4),
                           seed_prompts=[SEED_PROMPT], output_dir=str(out), quiet=True, seed=seed, evaluate_test=False)


def scored_examples(cfg: SearchRunConfig) -> list[Any]:
    return make_split(cfg.data, load_data(cfg.data)).dev


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-{b}" for s, b in CASES])
def reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, bert: Backbone,
              llama: Backbone) -> Reference:
    strategy, name = request.param
    backbone = {"bert": bert, "llama": llama}[name]
    root = tmp_path_factory.mktemp(f"{strategy}-{name}")
    data_file = toy_csv(root / "toy.csv")
    cls = get_searcher(strategy)
    options = cls.config_class.from_dict(dict(SMALL.get(strategy, {})))
    cfg = settings(data_file, strategy, name, 1, root, SEED)
    n_scored, labels = len(scored_examples(cfg)), len(load_data(cfg.data).labels)
    # the probe's row, the label names (encoded once per search, by the label-description head) and the rounds
    budget = 1 + labels + ROUNDS * cls.evaluations_per_round(options) * n_scored

    def config(out: Path, seed: int) -> SearchRunConfig:
        return settings(data_file, strategy, name, budget, out, seed)

    before = copy.deepcopy(backbone.model.state_dict())
    with count_rows(backbone) as rows:
        result = run_search(config(root / "run", SEED), backbone=backbone, log=lambda _: None)
    untouched = all(torch.equal(before[k], v) for k, v in backbone.model.state_dict().items())
    return Reference(strategy, backbone, config, budget, root / "run", result, rows[0], untouched)


# ---------------------------------------------------------------------------- the budget
def test_stays_within_its_budget_and_leaves_the_backbone_alone(reference: Reference) -> None:
    result, cls = reference.result, get_searcher(reference.strategy)
    per_round = cls.evaluations_per_round(cls.config_class.from_dict(dict(SMALL.get(reference.strategy, {}))))
    assert result["backbone"] == reference.config(reference.directory, SEED).backbone
    assert result["forwards"] <= reference.budget
    assert result["evaluations"] >= per_round  # it searched: at least one round was affordable and made
    assert len(reference.journal()) == result["evaluations"]  # every evaluation journalled, once
    spent = [point["forwards"] for point in result["curve"]]
    assert spent == sorted(spent) and spent[-1] <= result["forwards"]
    best = [point["best_fitness"] for point in result["curve"]]
    assert best == sorted(best)
    assert reference.backbone_untouched


def test_every_forward_pass_is_counted(reference: Reference) -> None:
    # the label-description head's label names included: the scorer encodes them once and counts that
    assert reference.rows == reference.result["forwards"]


# ---------------------------------------------------------------------------- the answer
def test_returns_a_prompt_the_scorer_accepts(reference: Reference) -> None:
    result = reference.result
    journal = reference.journal()
    best_fitness = max(entry["fitness"] for entry in journal)
    first_best = next(entry for entry in journal if entry["fitness"] == best_fitness)
    assert result["dev_fitness"] == best_fitness  # the answer is the best candidate it scored
    assert (result["top"][0]["fitness"], result["top"][0]["accuracy"]) == (first_best["fitness"],
                                                                           first_best["accuracy"])
    cfg = reference.config(reference.directory, SEED)
    data = load_data(cfg.data)
    scorer = PromptScorer(reference.backbone, data.labels, scored_examples(cfg), head=cfg.head, task=data.name,
                          max_length=cfg.max_length, batch_size=cfg.batch_size, margin_weight=cfg.margin_weight)
    saved = PromptModel.from_pretrained(reference.directory / "best", backbone=reference.backbone)
    assert saved.template == result["template"]
    expected = Score(result["dev_fitness"], result["dev_accuracy"], result["dev_margin"], len(scorer.examples))
    assert scorer.score_model(saved) == expected  # the saved prompt, scored afresh, is the journalled best
    assert scorer.score_model(result["_model"]) == expected


def test_is_deterministic_for_a_seed(reference: Reference, tmp_path: Path) -> None:
    again = reference.run(tmp_path / "again")
    assert_same_values(reference.result, again, RESULT_KEYS)
    assert_same_files(reference.directory, tmp_path / "again", [JOURNAL_FILE, "best/" + WEIGHTS_FILE])
    other = reference.run(tmp_path / "other", seed=SEED + 1)
    assert (tmp_path / "other" / JOURNAL_FILE).read_text() != (reference.directory / JOURNAL_FILE).read_text()
    assert other["curve"] != reference.result["curve"]


# ---------------------------------------------------------------------------- resume
def test_a_killed_search_resumes_by_replay_to_the_same_result(reference: Reference, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    evaluations = reference.result["evaluations"]
    journalled = max(2, evaluations // 2)  # evaluations made before the kill
    cut = Cut.at_call(PromptScorer, "score_model", 1 + journalled + 1)  # the runner's probe, those, then the kill

    def journal_holds_what_was_made(directory: Path) -> None:
        assert len(reference.journal(directory)) == journalled

    run = run_interrupted_then_resumed(monkeypatch, lambda out, resume: reference.run(out, resume=resume), tmp_path,
                                       cut, before_resume=journal_holds_what_was_made)
    assert_same_values(run.whole, run.resumed, RESULT_KEYS)
    assert_same_values(run.whole, reference.result, RESULT_KEYS)
    assert_same_files(run.whole_dir, run.cut_dir, [JOURNAL_FILE, "best/" + WEIGHTS_FILE, "best/adapter_config.json"])
    # the resume scored only what the journal did not hold (a fresh start would end in the same place)
    assert run.calls["whole"] == 1 + evaluations
    assert run.calls["resumed"] == 1 + evaluations - journalled


def test_a_search_killed_by_sigkill_resumes_from_its_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hard kill (no clean-up runs) of the command: the journal on disk is enough to resume exactly.
    The journal is the budget's, shared by every strategy, so one strategy stands for all."""
    data_file = toy_csv(tmp_path / "toy.csv")

    def argv(out: Path) -> list[str]:
        return ["search", "evolution", "--train-file", str(data_file), "--backbone", "tiny-llama", "--shots", "4",
                "--label-words", "{neg: [bad], pos: [good]}", "--seed-prompt", SEED_PROMPT, "--option",
                "population=4", "--max-forward-passes", "120", "--seed", str(SEED), "--no-test", "--quiet", "--output", str(out)]

    journalled = 6
    run = cli_killed_then_resumed(monkeypatch, argv, tmp_path, Cut.at_call(PromptScorer, "score_model", journalled + 2))
    assert run.whole == run.resumed == 0
    assert_same_files(run.whole_dir, run.cut_dir, [JOURNAL_FILE, "best/" + WEIGHTS_FILE, "best/adapter_config.json"])
    whole, resumed = (json.loads((d / "results.json").read_text())["results"] for d in (run.whole_dir, run.cut_dir))
    assert_same_values(whole, resumed, RESULT_KEYS)
    assert run.calls["resumed"] == 1 + whole["evaluations"] - journalled
