"""SPT's successive-halving layer choice (search scorer ``retrain``): the draw, the halving, the run."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.batching import batches, encode
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig, halving_search
from promptlearning.training.gate_search import SearchConfig

from .conftest import toy_examples
from .test_cli import _rows, write_delimited


def test_candidate_sets_are_distinct_sorted_and_drawn_from_the_seed() -> None:
    layers = list(range(12))
    sets = halving_search.candidate_sets(layers, 4, 8, seed=13)
    assert len(sets) == 8 and len({tuple(s) for s in sets}) == 8
    assert all(s == sorted(s) and len(s) == 4 and set(s) <= set(layers) for s in sets)
    assert sets == halving_search.candidate_sets(layers, 4, 8, seed=13)
    assert sets != halving_search.candidate_sets(layers, 4, 8, seed=1)
    assert halving_search.candidate_sets([3, 5, 7], 2, 8, seed=13) == [[3, 5], [3, 7], [5, 7]]  # all of them


class _FakeTrainer:
    """Records how long each set trains; the set's 'quality' is fixed by its layers."""

    calls: list[tuple[list[int], int]] = []

    def __init__(self, model: Any, config: TrainConfig, train: list[Any], dev: list[Any]) -> None:
        self.model, self.config = model, config

    def fit(self) -> None:
        _FakeTrainer.calls.append((self.model, self.config.max_steps))


def test_halving_keeps_the_better_half_and_doubles_the_steps(bert: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    # the held-out score of a set is the sum of its layers (a known ranking), the loss breaks no tie here
    _FakeTrainer.calls = []
    monkeypatch.setattr(halving_search, "Trainer", _FakeTrainer)
    monkeypatch.setattr(halving_search, "validation_score", lambda model, items, bs: (sum(model) / 100, 1.0))
    items = encode(bert.tokenizer, toy_examples(8, 0), 32)
    found = halving_search.halving_search(lambda layers: layers, list(range(12)), TrainConfig(seed=13),  # type: ignore[arg-type, return-value]
                                          SearchConfig(budget=4, scorer="retrain", candidates=8, rung_steps=5),
                                          items, 2, log=lambda _: None)
    drawn = halving_search.candidate_sets(list(range(12)), 4, 8, seed=13)
    assert found["chosen_layers"] == max(drawn, key=sum)
    assert [r["steps"] for r in found["rungs"]] == [5, 10, 20]
    assert [len(r["sets"]) for r in found["rungs"]] == [8, 4, 2]
    assert found["steps"] == 8 * 5 + 4 * 10 + 2 * 20 == sum(steps for _, steps in _FakeTrainer.calls)
    survivors = sorted(drawn, key=sum, reverse=True)[:4]
    assert sorted(r["layers"] for r in found["rungs"][1]["sets"]) == sorted(survivors)


def test_validation_score_is_accuracy_and_mean_loss(bert: Backbone) -> None:
    model = PromptModel.build(bert, "spt", ["neg", "pos"], method_options={"num_tokens": 2, "selected_layers": [1]})
    items = encode(bert.tokenizer, toy_examples(6, 3), 32)
    acc, loss = halving_search.validation_score(model, items, 4)  # in batches of 4
    [whole] = batches(items, len(items), model.pad_id, model.left_pad)
    model.eval()
    with torch.no_grad():
        out = model(whole)
    assert out.loss is not None
    assert loss == pytest.approx(float(out.loss), rel=1e-4)  # the mean over the rows, whatever the batching
    assert acc == pytest.approx(float((out.logits.argmax(-1) == whole.labels).float().mean()))


def test_scorer_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="must be gates or retrain"):
        SearchConfig(scorer="halving")
    with pytest.raises(ConfigError, match="--threshold reads gate probabilities"):
        SearchConfig(scorer="retrain", threshold=0.5)
    with pytest.raises(ConfigError, match="--layer-candidates must be >= 1"):
        SearchConfig(scorer="retrain", candidates=0)
    assert SearchConfig(scorer="retrain", candidates=0, blocks=True).candidates == 0  # the blocks alone


def test_blocks_come_first_and_the_random_sets_are_drawn_beside_them() -> None:
    layers = list(range(12))
    with_blocks = halving_search.candidate_sets(layers, 4, 8, seed=13, blocks=True)
    assert with_blocks[:9] == [list(range(i, i + 4)) for i in range(9)]  # first, ..., middle [4-7], ..., last
    assert len(with_blocks) == 17 and len({tuple(s) for s in with_blocks}) == 17
    assert halving_search.candidate_sets(layers, 4, 0, seed=13, blocks=True) == with_blocks[:9]
    assert halving_search.candidate_sets([3, 5, 7], 2, 1, seed=13, blocks=True) == [[3, 5], [5, 7], [3, 7]]


def test_train_with_retrain_scorer_retrains_the_halving_winner(tmp_path: Path) -> None:
    write_delimited(tmp_path / "train.csv", _rows())
    argv = ["train", "--train-file", str(tmp_path / "train.csv"), "--backbone", "tiny-bert", "--method", "spt",
            "--layer-budget", "1", "--layer-scorer", "retrain", "--rung-steps", "2", "--max-steps", "3",
            "--eval-every", "3", "--shots", "4", "--quiet", "--no-baseline"]
    results = []
    for name in ("a", "b"):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main([*argv, "--output", str(tmp_path / name)]) == 0, err.getvalue()
        results.append(json.loads((tmp_path / name / "results.json").read_text())["results"])
    first = results[0]
    [rung] = first["search_rungs"]  # tiny-bert: two candidate layers, budget 1: two sets, one rung
    assert rung["steps"] == 2 and sorted(s["layers"] for s in rung["sets"]) == [[0], [1]]
    best = min(rung["sets"], key=lambda s: (-s["val_accuracy"], s["val_loss"]))
    assert first["chosen_layers"] == first["prompt_layers"] == best["layers"]
    assert first["search_steps"] == 4 and "gate_trace" not in first
    assert results[1]["search_rungs"] == first["search_rungs"]  # seeded: the same choice twice
    config = json.loads((tmp_path / "a" / "best" / "adapter_config.json").read_text())
    assert config["method_config"]["selected_layers"] == best["layers"]  # the adapter holds the winner's layers


@pytest.mark.parametrize("extra", [["--method", "prompt_tuning", "--layer-budget", "2"],
                                   ["--method", "spt", "--option", "selected_layers=[1]", "--layer-scorer", "retrain"]])
def test_search_options_on_a_run_that_does_not_search_are_refused(tmp_path: Path, extra: list[str]) -> None:
    write_delimited(tmp_path / "train.csv", _rows())
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "--train-file", str(tmp_path / "train.csv"), "--backbone", "tiny-bert", *extra,
                     "--shots", "4", "--max-steps", "2", "--quiet", "--output", str(tmp_path / "run")])
    assert code != 0 and "acts only on SPT's layer search" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1 and not (tmp_path / "run").exists()


class _DivergingTrainer(_FakeTrainer):
    """A set holding layer 11 diverges, as the last block did on mpnet-base."""

    def fit(self) -> None:
        if 11 in self.model:
            raise TrainingError("the training loss exploded; lower --lr")
        super().fit()


def test_a_diverging_set_loses_and_the_search_goes_on(bert: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(halving_search, "Trainer", _DivergingTrainer)
    # layer 11 would win on score: the known ranking favours high layers
    monkeypatch.setattr(halving_search, "validation_score", lambda model, items, bs: (sum(model) / 100, 1.0))
    items = encode(bert.tokenizer, toy_examples(8, 0), 32)
    lines: list[str] = []
    found = halving_search.halving_search(lambda layers: layers, list(range(12)), TrainConfig(seed=13),  # type: ignore[arg-type, return-value]
                                          SearchConfig(budget=4, scorer="retrain", candidates=0, blocks=True),
                                          items, 2, log=lines.append)
    assert found["chosen_layers"] == [7, 8, 9, 10]  # the best block without layer 11
    first = {tuple(s["layers"]): s for s in found["rungs"][0]["sets"]}
    assert first[(8, 9, 10, 11)]["diverged"] and first[(8, 9, 10, 11)]["val_loss"] is None
    assert not first[(7, 8, 9, 10)]["diverged"]
    assert any("[8, 9, 10, 11] dropped" in line for line in lines)
    json.dumps(found)  # the record stays plain JSON
