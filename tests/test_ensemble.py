"""Prompt ensembles: N prompts of one task answered as one adapter, in one forward, by the mean of the
members' probabilities; saved as one directory; taken by evaluate, predict and serve; bad input refused."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from promptlearning.adapters import CONFIG_FILE, WEIGHTS_FILE
from promptlearning.backbones import Backbone
from promptlearning.data.task_info import TaskInfo
from promptlearning.ensemble import COMBINE, EnsembleModel, ensemble_methods, load_predictor
from promptlearning.errors import AdapterError, ConfigError
from promptlearning.model import PromptModel
from promptlearning.serving import PromptServer, ServingLimits
from promptlearning.training.metrics import evaluate

from .conftest import toy_examples

TEXTS = ["great movie", "awful film", "fun and funny bad acting", "i hate this", "best story", "so boring"]
TOLERANCE = 1e-5  # float32: the same rows through the same layers, only batched differently


def members(backbone: Backbone, method: str, n: int = 3, labels: tuple[str, ...] = ("neg", "pos"),
            options: dict[str, object] | None = None) -> list[PromptModel]:
    """``n`` perturbed (so different, not at their initialisation) models of one method and task."""
    tasks = [TaskInfo("toy", list(labels), description="Is this movie review positive or negative?")]
    out = []
    for i in range(n):
        torch.manual_seed(i)
        model = PromptModel.build(backbone, method, list(labels), method_options=dict(options or {}), tasks=tasks)
        with torch.no_grad():
            for p in model.trainable_parameters():
                p.add_(torch.randn_like(p) * 0.2)
        out.append(model.eval())
    return out


@pytest.mark.parametrize("method", ensemble_methods())
def test_ensemble_probabilities_are_the_mean_of_its_members(bert: Backbone, method: str) -> None:
    models = members(bert, method)
    ensemble = EnsembleModel(models)
    alone = torch.stack([m.predict_proba(TEXTS) for m in models])  # (N, B, C): each member on its own
    assert not torch.allclose(alone[0], alone[1])  # the members differ, so the mean is not any one of them
    assert torch.allclose(ensemble.predict_proba(TEXTS), alone.mean(0), atol=TOLERANCE)


def test_ensemble_on_a_causal_lm_with_the_verbalizer(llama: Backbone) -> None:
    models = members(llama, "prompt_tuning", options={"num_tokens": 2})
    ensemble = EnsembleModel(models)
    alone = torch.stack([m.predict_proba(TEXTS) for m in models])
    assert torch.allclose(ensemble.predict_proba(TEXTS), alone.mean(0), atol=TOLERANCE)


def test_one_backbone_forward_answers_every_member(bert: Backbone) -> None:
    ensemble = EnsembleModel(members(bert, "p_tuning_v2", n=5, options={"num_tokens": 2}))
    calls: list[int] = []
    handle = bert.model.register_forward_hook(lambda module, args, kwargs_or_out: calls.append(1))
    try:
        probs = ensemble.predict_proba(TEXTS, batch_size=len(TEXTS))  # one batch of inputs
    finally:
        handle.remove()
    assert len(calls) == 1 and probs.shape == (len(TEXTS), 2)


def test_a_smaller_ensemble_of_the_first_members(bert: Backbone) -> None:
    models = members(bert, "prompt_tuning", n=5)
    three = EnsembleModel(models).first_members(3)
    alone = torch.stack([m.predict_proba(TEXTS) for m in models[:3]])
    assert len(three.members) == 3 and torch.allclose(three.predict_proba(TEXTS), alone.mean(0), atol=TOLERANCE)


def test_evaluate_scores_the_ensemble_like_its_predictions(bert: Backbone) -> None:
    ensemble = EnsembleModel(members(bert, "prompt_tuning", options={"num_tokens": 3}))
    examples = toy_examples(4)
    scores = evaluate(ensemble, ensemble.encode(examples), batch_size=3)
    predicted = ensemble.predict_proba([e.text_a for e in examples]).argmax(-1).tolist()
    gold = [e.label for e in examples]
    assert scores["accuracy"] == sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


@pytest.mark.parametrize("method", ensemble_methods())
def test_save_and_load_round_trip(bert: Backbone, tmp_path: Path, method: str) -> None:
    ensemble = EnsembleModel(members(bert, method))
    ensemble.save_pretrained(tmp_path / "ens", extra={"task": "toy"})
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # ONE adapter
    config = json.loads((tmp_path / "ens" / CONFIG_FILE).read_text())
    assert config["ensemble"]["combine"] == COMBINE and len(config["ensemble"]["members"]) == 3
    assert {k.split(".")[1] for k in load_file(str(tmp_path / "ens" / WEIGHTS_FILE))} == {"0", "1", "2"}
    loaded = load_predictor(tmp_path / "ens", backbone=bert)
    assert isinstance(loaded, EnsembleModel)
    for before, after in zip(ensemble.members, loaded.members, strict=True):
        saved, back = before.trainable_state(), after.trainable_state()
        assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)
    assert torch.equal(loaded.predict_proba(TEXTS), ensemble.predict_proba(TEXTS))


def test_a_plain_loader_refuses_an_ensemble_with_the_way_round(bert: Backbone, tmp_path: Path) -> None:
    EnsembleModel(members(bert, "prompt_tuning", n=2)).save_pretrained(tmp_path / "ens")
    with pytest.raises(AdapterError, match="ensemble of 2 prompts.*load_predictor"):
        PromptModel.from_pretrained(tmp_path / "ens", backbone=bert)


def test_a_damaged_ensemble_file_is_refused(bert: Backbone, tmp_path: Path) -> None:
    EnsembleModel(members(bert, "prompt_tuning", n=2)).save_pretrained(tmp_path / "ens")
    config = json.loads((tmp_path / "ens" / CONFIG_FILE).read_text())
    config["ensemble"]["members"] = config["ensemble"]["members"][:1]
    (tmp_path / "ens" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="unusable ensemble section"):
        load_predictor(tmp_path / "ens", backbone=bert)


def test_image_backbones_are_refused_in_one_line() -> None:
    from promptlearning.backbones import load_backbone

    vit = load_backbone("tiny-vit")
    models = [PromptModel.build(vit, "linear_probe", ["dark", "bright"]) for _ in range(2)]
    with pytest.raises(ConfigError, match="text backbones only.*drop --ensemble"):
        EnsembleModel(models)
    assert "vpt" not in ensemble_methods() and "prompt_tuning" in ensemble_methods()


def test_members_that_cannot_be_combined_are_refused(bert: Backbone) -> None:
    with pytest.raises(ConfigError, match="at least 2 members"):
        EnsembleModel(members(bert, "prompt_tuning", n=1))
    with pytest.raises(ConfigError, match="cannot combine fixed_prompt.*prompt_tuning"):
        EnsembleModel(members(bert, "fixed_prompt", n=2))
    two = members(bert, "prompt_tuning", n=1) + members(bert, "prompt_tuning", n=1, labels=("bad", "good"))
    with pytest.raises(ConfigError, match="differ in labels"):
        EnsembleModel(two)


def test_the_server_answers_an_ensemble_like_the_ensemble(bert: Backbone, tmp_path: Path) -> None:
    ensemble = EnsembleModel(members(bert, "prefix_tuning", options={"num_tokens": 2}))
    ensemble.save_pretrained(tmp_path / "ens")
    single = members(bert, "prompt_tuning", n=1)[0]
    single.save_pretrained(tmp_path / "one")
    server = PromptServer(bert, {"ens": tmp_path / "ens", "one": tmp_path / "one"},
                          limits=ServingLimits(max_wait_ms=20))
    try:
        described = {a["name"]: a for a in server.adapters()}
        assert described["ens"]["ensemble"] == 3 and "ensemble" not in described["one"]
        answers = asyncio.run(server.submit(TEXTS[:4], adapters=["ens", "one", "ens", "one"]))
    finally:
        server.close()
    want = ensemble.predict_proba(TEXTS[:4])
    for row in (0, 2):
        got = torch.tensor([answers[row].probabilities[label] for label in ensemble.labels])
        assert torch.allclose(got, want[row], atol=TOLERANCE)
    assert answers[1].probabilities == pytest.approx(
        dict(zip(single.labels, single.predict_proba([TEXTS[1]])[0].tolist(), strict=True)), abs=TOLERANCE)


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning"])
def test_a_bfloat16_backbone_gives_the_mean_too(bert: Backbone, method: str) -> None:
    half = copy.deepcopy(bert).to(torch.bfloat16)  # a private copy: the shared backbone stays float32
    models = members(half, method, options={"num_tokens": 2})
    alone = torch.stack([m.predict_proba(TEXTS) for m in models])
    assert torch.allclose(EnsembleModel(models).predict_proba(TEXTS), alone.mean(0), atol=1e-2)  # bfloat16 rounding
