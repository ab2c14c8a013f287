"""The search strategies on tiny problems whose best prompt is known, resume options, and the hybrid.

The known-best problems replace the backbone's score by a synthetic one (word edit distance to a
target template; distance of the soft prompt to a target in the search subspace; how often the
policy writes a target word), so they test the optimisers themselves in milliseconds. What every strategy owes (budget,
determinism, a scorable answer, resume after a kill, encoders and decoders) is the contract in
``test_search_strategy_contract.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import batches
from promptlearning.data.loading import load_data, make_split
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import DataConfig
from promptlearning.search.base import SearchContext, get_searcher, list_searchers
from promptlearning.search.budget import SearchBudget
from promptlearning.search.candidates import DiscretePrompt, parse_seeds, words
from promptlearning.search.hybrid import hybrid_method_options, soft_template
from promptlearning.search.runner import SearchRunConfig, run_search
from promptlearning.search.scoring import PromptScorer, Score, count_rows

from .conftest import toy_csv, toy_examples
from .resume_helper import Cut, assert_same_files, assert_same_values, run_interrupted_then_resumed

VERB = HeadConfig(kind="verbalizer", label_words={"neg": ["bad"], "pos": ["good"]})


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def word_list(template: str) -> list[str]:
    return [w.strip() for p in DiscretePrompt.parse(template).phrases for w in ([p] if "{" in p else words(p))]


class TargetTemplate(PromptScorer):
    """Fitness: minus the word edit distance to a target template (accuracy 1 only at the target)."""

    target: str = ""

    def score_template(self, template: str) -> Score:
        distance = edit_distance(word_list(template), word_list(self.target))
        return Score(-float(distance), float(distance == 0), 0.0, 1)


class TargetVector(PromptScorer):
    """Fitness: minus the squared distance of the soft prompt to a target prompt."""

    target: torch.Tensor

    def score_model(self, model: PromptModel, items: Any = None) -> Score:
        distance = float(((model.method.prompt.detach() - self.target) ** 2).sum())
        return Score(-distance, 0.0, 0.0, 1)


class TargetWord(PromptScorer):
    """Reward: the share of the template's words that are the target word."""

    word = "great"

    def score_template(self, template: str) -> Score:
        found = word_list(template).count(self.word)
        return Score(found / 4, 0.0, 0.0, 1)


def context(scorer: PromptScorer, budget: int, seed_prompt: str = "Review: {text_a} It was", seed: int = 0,
            directory: Path | None = None) -> SearchContext:
    return SearchContext(scorer, SearchBudget(budget, estimate=1, quiet=True, directory=directory),
                         parse_seeds([seed_prompt], 40), seed=seed, log=lambda _: None)


def test_registry_lists_the_strategies() -> None:
    assert {"evolution", "rl", "cma_es"} <= {cls.name for cls in list_searchers()}


def test_evolution_finds_the_known_best_prompt(llama: Backbone) -> None:
    scorer = TargetTemplate(llama, ["neg", "pos"], toy_examples(2), head=VERB)
    scorer.target = "{text_a} It was great"
    ctx = context(scorer, 3000)
    searcher = get_searcher("evolution")
    outcome = searcher(searcher.config_class.from_dict({"population": 10}), ctx).run()
    assert outcome.description == scorer.target
    assert ctx.budget.best is not None and ctx.budget.best.accuracy == 1.0
    assert ctx.budget.used <= 3000
    assert outcome.model.template == scorer.target


def test_cma_es_finds_the_known_best_soft_prompt(llama: Backbone) -> None:
    scorer = TargetVector(llama, ["neg", "pos"], toy_examples(2), head=VERB)
    cls = get_searcher("cma_es")
    config = cls.config_class.from_dict({"num_tokens": 2, "dim": 4, "popsize": 8})
    ctx = context(scorer, 1200)
    searcher = cls(config, ctx)
    z_star = np.array([0.8, -0.5, 0.3, 1.1])
    scorer.target = (searcher.p0 + (searcher.projections[0] @ torch.tensor(z_star, dtype=torch.float32))
                     .view_as(searcher.p0))
    start = float(((searcher.p0 - scorer.target) ** 2).sum())
    outcome = searcher.run()
    found = float(((outcome.model.method.prompt.detach() - scorer.target) ** 2).sum())
    assert found < 1e-4 * start
    assert np.allclose(outcome.extra["best_z"][0], z_star, atol=1e-2)
    assert ctx.budget.used <= 1200


def test_cma_es_layerwise_tunes_one_layer_at_a_time(llama: Backbone) -> None:
    scorer = PromptScorer(llama, ["neg", "pos"], toy_examples(2), head=VERB)
    cls = get_searcher("cma_es")
    config = cls.config_class.from_dict({"num_tokens": 2, "dim": 3, "popsize": 4, "layers": [0, 1],
                                         "generations_per_layer": 1, "generations": 4})
    searcher: Any = cls(config, context(scorer, 10_000))
    before = searcher.p0.clone()
    tried: list[tuple[str, list[np.ndarray]]] = []
    score = searcher.score

    def recording(zs: list[np.ndarray], label: str) -> Score:
        tried.append((label, [z.copy() for z in zs]))
        return score(zs, label)

    searcher.score = recording
    outcome = searcher.run()
    assert outcome.extra["generations"] == 4
    assert [label for label, _ in tried][1:9:4] == ["generation 1 layer 0 candidate 1",
                                                    "generation 2 layer 1 candidate 1"]
    for generation in range(4):
        tuned, held = generation % 2, 1 - generation % 2  # round robin, one generation per layer
        candidates = [zs for label, zs in tried if label.startswith(f"generation {generation + 1} ")]
        assert len(candidates) == 4
        assert all(np.array_equal(zs[held], candidates[0][held]) for zs in candidates)  # the other layer is held
        assert len({zs[tuned].tobytes() for zs in candidates}) == 4  # while this one's candidates differ
    # the answer's prompt moved at exactly the layers whose best z is not zero
    moved = (outcome.model.method.prompts.detach() - before).abs().sum(dim=(1, 2))  # (2,)
    assert [bool(m > 0) for m in moved] == [any(v != 0 for v in z) for z in outcome.extra["best_z"]]


def expected_reward(searcher: Any, samples: int = 400) -> float:
    with torch.no_grad():
        tokens, _, _ = searcher.policy.sample(samples, torch.Generator().manual_seed(123))
    rewards = [searcher.ctx.scorer.score_template(searcher.prompt_of(row).template).fitness for row in tokens.tolist()]
    return float(np.mean(rewards))


def test_rl_policy_expected_reward_rises(llama: Backbone) -> None:
    scorer = TargetWord(llama, ["neg", "pos"], toy_examples(2), head=VERB)
    cls = get_searcher("rl")
    config = cls.config_class.from_dict({"num_words": 4, "samples": 16, "steps": 40})
    searcher = cls(config, context(scorer, 100_000))
    before = expected_reward(searcher)
    outcome = searcher.run()
    after = expected_reward(searcher)
    assert after > 2 * before
    assert outcome.extra["steps"] == 40
    assert "great" in outcome.description
    history = [h["mean_reward"] for h in outcome.extra["reward_history"]]
    assert np.mean(history[-5:]) > np.mean(history[:5])


# ---------------------------------------------------------------------------- runs from a config, resume
def run_config(tmp_path: Path, strategy: str, options: dict[str, Any], out: str, budget: int = 160) -> SearchRunConfig:
    return SearchRunConfig(strategy=strategy, options=options, backbone="tiny-llama", head=VERB, budget=budget,
                           data=DataConfig(task=None, train_file=str(toy_csv(tmp_path / "toy.csv")), shots=4),
                           seed_prompts=["Review: {text_a} It was"], output_dir=str(tmp_path / out), quiet=True,
                           seed=3)


STRATEGIES = [("evolution", {"population": 4}), ("rl", {"samples": 4, "num_words": 2}),
              ("cma_es", {"dim": 3, "popsize": 4})]


def test_a_killed_layerwise_cma_es_search_resumes_exactly(tmp_path: Path, llama: Backbone,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the contract resumes every strategy with its small options; deep prompts add a CMA-ES per layer
    def run(out: Path, resume: bool) -> dict[str, Any]:
        cfg = run_config(tmp_path, "cma_es", {"dim": 3, "popsize": 4, "layers": [1]}, out.name)  # out: tmp_path/...
        return run_search(cfg, resume=resume, backbone=llama, log=lambda _: None)

    cut = Cut.at_call(PromptScorer, "score_model", 7)  # the probe, then five evaluations, then the kill
    resumed = run_interrupted_then_resumed(monkeypatch, run, tmp_path, cut)
    whole = resumed.whole
    assert_same_values(whole, resumed.resumed, ("best_prompt", "forwards", "evaluations", "dev_fitness", "top",
                                                "curve", "test_accuracy", "extra"))
    assert_same_files(resumed.whole_dir, resumed.cut_dir, ["journal.jsonl", "best/adapter_model.safetensors"])
    assert resumed.calls["resumed"] == 1 + whole["evaluations"] - 5  # only what the journal did not hold
    reloaded = PromptModel.from_pretrained(resumed.cut_dir / "best", backbone=llama)
    assert reloaded.template == whole["template"]


def test_resume_with_other_settings_is_refused(tmp_path: Path, llama: Backbone) -> None:
    run_search(run_config(tmp_path, "evolution", {"population": 4}, "run"), backbone=llama, log=lambda _: None)
    changed = run_config(tmp_path, "evolution", {"population": 5}, "run")
    with pytest.raises(TrainingError, match="other settings"):
        run_search(changed, resume=True, backbone=llama, log=lambda _: None)


@pytest.mark.parametrize(("strategy", "options"), STRATEGIES)
def test_resume_with_a_larger_budget_continues_the_same_search(tmp_path: Path, llama: Backbone, strategy: str,
                                                              options: dict[str, Any]) -> None:
    whole = run_search(run_config(tmp_path, strategy, options, "whole", budget=200), backbone=llama,
                       log=lambda _: None)
    short = run_search(run_config(tmp_path, strategy, options, "run", budget=100), backbone=llama, log=lambda _: None)
    assert short["forwards"] < whole["forwards"]
    said: list[str] = []
    longer = run_search(run_config(tmp_path, strategy, options, "run", budget=200), resume=True, backbone=llama,
                        log=said.append)
    for key in ("best_prompt", "forwards", "evaluations", "dev_fitness", "top", "curve"):
        assert longer[key] == whole[key], key
    assert any("budget of 200" in line for line in said)
    lines = (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
    assert len(lines) == longer["evaluations"]


def test_resume_with_a_smaller_budget_stops_where_a_run_with_that_budget_stops(tmp_path: Path,
                                                                              llama: Backbone) -> None:
    # the runner: "a larger budget continues the very search a longer run would have made, and a smaller one
    # stops it earlier"
    longer = run_search(run_config(tmp_path, "evolution", {"population": 4}, "run", budget=200), backbone=llama,
                        log=lambda _: None)
    said: list[str] = []
    shorter = run_search(run_config(tmp_path, "evolution", {"population": 4}, "run", budget=100), resume=True,
                         backbone=llama, log=said.append)
    fresh = run_search(run_config(tmp_path, "evolution", {"population": 4}, "fresh", budget=100), backbone=llama,
                       log=lambda _: None)
    assert shorter["forwards"] <= 100 < longer["forwards"]
    assert_same_values(shorter, fresh, ("best_prompt", "forwards", "evaluations", "dev_fitness", "top", "curve"))
    # the journal holds this run's evaluations, as a fresh run's does; the ones past the budget were dropped
    assert_same_files(tmp_path / "run", tmp_path / "fresh", ["journal.jsonl", "best/adapter_model.safetensors"])
    dropped = longer["evaluations"] - fresh["evaluations"]
    assert any(f"last {dropped} evaluations lie past the budget of 100" in line for line in said)


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_the_smallest_budget_named_pays_for_exactly_one_round(tmp_path: Path, bert: Backbone, llama: Backbone,
                                                               name: str) -> None:
    """The probe counts one row per scored example and the label names once (label-description head), so the
    budget the too-small error names is exactly the set-up, the probe and one generation: it runs one round."""
    backbone = {"bert": bert, "llama": llama}[name]
    head = HeadConfig(kind="label_description") if name == "bert" else VERB

    def run(budget: int, out: str) -> dict[str, Any]:
        cfg = run_config(tmp_path, "evolution", {"population": 4}, out, budget=budget)
        cfg.backbone, cfg.head, cfg.evaluate_test = f"tiny-{name}", head, False
        return run_search(cfg, backbone=backbone, log=lambda _: None)

    cfg = run_config(tmp_path, "evolution", {"population": 4}, "probe")
    n_scored = len(make_split(cfg.data, load_data(cfg.data)).dev)
    label_rows = 2 if name == "bert" else 0  # "neg" and "pos", one row each, encoded once per search
    need = label_rows + 1 + 4 * n_scored
    with pytest.raises(ConfigError, match=f"pass --max-forward-passes {need} or more"):
        run(need - 1, "short")
    result = run(need, "exact")
    assert (result["evaluations"], result["forwards"]) == (4, need)


def test_models_after_the_scorers_first_reuse_its_label_encodings(bert: Backbone) -> None:
    head = HeadConfig(kind="label_description")
    with count_rows(bert) as rows:
        scorer = PromptScorer(bert, ["neg", "pos"], toy_examples(2), head=head)
    assert rows[0] == 2  # the label names, once
    with count_rows(bert) as rows:
        reused = [scorer.model_for("Review: {text_a} It was"), scorer.model_for(None, "prompt_tuning",
                                                                               {"num_tokens": 2})]
    assert rows[0] == 0
    fresh = PromptModel.build(bert, "fixed_prompt", ["neg", "pos"], head=head)
    for model in reused:  # the very vectors a model built on its own encodes
        assert torch.equal(model.head.label_vectors, fresh.head.label_vectors)
    # outside the scorer nothing is reused: a build encodes the label names again
    with count_rows(bert) as rows:
        PromptModel.build(bert, "fixed_prompt", ["neg", "pos"], head=head)
    assert rows[0] == 2


def test_a_journal_line_this_version_cannot_replay_is_refused_in_one_line(tmp_path: Path, llama: Backbone) -> None:
    cfg = run_config(tmp_path, "evolution", {"population": 4}, "run")
    run_search(cfg, backbone=llama, log=lambda _: None)
    journal = tmp_path / "run" / "journal.jsonl"
    journal.write_text(journal.read_text().splitlines()[0] + "\n" + '{"key": "Review: {text_a} It was"}\n')
    with pytest.raises(TrainingError, match="line 2 of .* is not a search evaluation this version can replay; "
                                            "start afresh with --overwrite in place of --resume"):
        run_search(cfg, resume=True, backbone=llama, log=lambda _: None)


def test_budget_is_never_exceeded_and_the_curve_climbs(tmp_path: Path, llama: Backbone) -> None:
    result = run_search(run_config(tmp_path, "evolution", {"population": 4}, "run", budget=100), backbone=llama,
                        log=lambda _: None)
    assert result["forwards"] <= 100
    best = [p["best_fitness"] for p in result["curve"]]
    assert best == sorted(best)


# ---------------------------------------------------------------------------- the hybrid
def test_soft_template_replaces_each_fixed_part_by_its_tokens(llama: Backbone) -> None:
    soft, ids = soft_template("Review: {text_a} It was", llama.tokenizer)
    assert soft == "[P2] {text_a}[P2]"
    assert ids == llama.tokenizer("Review:", add_special_tokens=False)["input_ids"] + \
        llama.tokenizer(" It was", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("template", ["Review: {text_a} It was", "Movie review: {text_a}\nIs it good? Answer:",
                                      "{text_a} so"])
def test_hybrid_first_forward_equals_the_discrete_prompt(any_backbone: Backbone, template: str) -> None:
    head = VERB if any_backbone.info.is_decoder else HeadConfig(kind="classification", dropout=0.0)
    labels = ["neg", "pos"]
    discrete = PromptModel.build(any_backbone, "fixed_prompt" if head is VERB else "linear_probe", labels,
                                 head=head, template=template)
    soft, options = hybrid_method_options(template, any_backbone.tokenizer)
    hybrid = PromptModel.build(any_backbone, "p_tuning", labels, method_options=options, head=head, template=soft)
    if head is not VERB:
        hybrid.head.load_state_dict(discrete.head.state_dict())
    table = any_backbone.input_embeddings().weight
    assert torch.equal(hybrid.method.encoded(), table[torch.tensor(options["init_ids"])])
    assert hybrid.num_trainable() == len(options["init_ids"]) * any_backbone.info.hidden_size + (
        0 if head is VERB else hybrid.head.linear.weight.numel() + 2)
    examples = toy_examples(3)
    a = batches(discrete.encode(examples), 6, discrete.pad_id, discrete.left_pad)[0]
    b = batches(hybrid.encode(examples), 6, hybrid.pad_id, hybrid.left_pad)[0]
    assert torch.equal(a.input_ids[b.prompt_slots < 0], b.input_ids[b.prompt_slots < 0])
    discrete.eval(), hybrid.eval()
    with torch.no_grad():
        assert torch.allclose(discrete(a).logits, hybrid(b).logits, atol=1e-6, rtol=0)


def test_hybrid_controls_start_elsewhere(llama: Backbone) -> None:
    _, ids_opts = hybrid_method_options("Review: {text_a} It was", llama.tokenizer, "ids")
    for init in ("vocab", "random"):
        soft, options = hybrid_method_options("Review: {text_a} It was", llama.tokenizer, init)
        model = PromptModel.build(llama, "p_tuning", ["neg", "pos"], method_options=options, head=VERB, template=soft)
        start = llama.input_embeddings().weight[torch.tensor(ids_opts["init_ids"])]
        assert not torch.equal(model.method.encoded(), start)


def test_a_search_that_only_repeats_itself_stops_before_the_budget(tmp_path: Path, llama: Backbone) -> None:
    # one word from a short candidate list: the policy runs out of new prompts long before the budget,
    # and every later sample is answered from memory at no cost, so only the repeat rule can stop it
    cfg = run_config(tmp_path, "rl", {"samples": 4, "num_words": 1, "candidates": 20}, "run", budget=100_000)
    said: list[str] = []
    result = run_search(cfg, backbone=llama, log=said.append)
    assert result["converged"] is True
    assert result["forwards"] < 100_000
    assert any("converged" in line for line in said)


def test_the_budget_counts_a_run_of_repeats_and_forgets_it_on_a_new_candidate() -> None:
    from promptlearning.search.budget import BudgetExhausted, SearchBudget
    from promptlearning.search.scoring import Score

    budget = SearchBudget(1000, estimate=1, quiet=True, max_repeats=3)
    score = Score(fitness=0.5, accuracy=0.5, margin=0.0, forwards=1)
    budget.evaluate("a", lambda: score)
    budget.evaluate("a", lambda: score)
    budget.evaluate("a", lambda: score)
    budget.evaluate("b", lambda: score)  # new: the run of repeats starts again
    budget.evaluate("a", lambda: score)
    budget.evaluate("b", lambda: score)
    with pytest.raises(BudgetExhausted):
        budget.evaluate("a", lambda: score)
    assert budget.converged and budget.used == 2
