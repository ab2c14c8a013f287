"""Token labelling on the packaged data and backbone: pos_wsj and pos_oanc load as described, and a
4-sentence P-tuning v2 tagger on MiniLM-L6 trains 5 steps and is scored on 50 WSJ and OANC test
sentences (no accuracy threshold: 5 steps say nothing about accuracy)."""

from __future__ import annotations

import pytest

from promptlearning.backbones import load_backbone
from promptlearning.data.loading import DataConfig
from promptlearning.data.tagging import load_tagged_task
from promptlearning.heads.base import HeadConfig
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.runs.tagging import evaluate_tagger, run_tagging
from promptlearning.training import TrainConfig


@pytest.mark.real
def test_the_pos_tasks_load_with_their_tag_sets() -> None:
    wsj, oanc = load_tagged_task("pos_wsj"), load_tagged_task("pos_oanc")
    assert len(wsj.tags) == 44 and len(wsj.pool) + len(wsj.test) == 1000 and len(wsj.test) == 300
    assert len(oanc.tags) == 48 and len(oanc.test) == 1000
    assert sorted(set(oanc.tags) - set(wsj.tags)) == ['"', "#", "NN|CD", "NN|JJ", "VBG|NN"]
    assert wsj.names(wsj.pool[0])[:2] and all(len(s.words) == len(s.tags) for s in wsj.pool)


@pytest.mark.real
def test_a_few_shot_p_tuning_v2_tagger_on_minilm_runs_and_is_scored() -> None:
    backbone = load_backbone("minilm-l6")
    cfg = ExperimentConfig(data=DataConfig(task="pos_wsj", shots=4, max_test=50), backbone="minilm-l6",
                           method="p_tuning_v2", method_options={"num_tokens": 8},
                           head=HeadConfig(kind="token_classification"),
                           train=TrainConfig(max_steps=5, eval_every=5, quiet=True, device="cpu"), max_length=128)
    result = run_tagging(cfg, backbone=backbone, baseline=False, log=lambda *_: None)
    assert result["steps"] == 5 and result["test_sentences"] == 50 and result["test"]["words"] > 50
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test"]["unseen_tag_words"] == 0
    cross = evaluate_tagger(result["_model"], DataConfig(task="pos_oanc", max_test=50))
    assert cross["n"] == 50 and set(cross["unseen_tags"]) <= {'"', "#", "NN|CD", "NN|JJ", "VBG|NN"}
