"""Integration: the real packaged MiniLM-L6 on the real MR task (marked ``real``), and
other architecture families (DistilBERT, GPT-2) built from configs in memory, saved to a
directory and loaded back the way a user's local model would be (no download).

The real run is kept short (20 steps, about half a minute on two idle CPU cores): a sanity check that
the whole pipeline works on a real backbone, not a benchmark, so no accuracy thresholds.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone, load_backbone
from promptlearning.data import load_task
from promptlearning.data.batching import collate, encode
from promptlearning.data.examples import Example
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import DataConfig, ExperimentConfig, make_split, run_experiment
from promptlearning.tiny import tiny_tokenizer
from promptlearning.training import TrainConfig

from .conftest import toy_examples

NUM_TOKENS = 8
MAX_LENGTH = 32
STEPS = 20


# ---------------------------------------------------------------------------- the packaged MiniLM-L6
@pytest.fixture(scope="module")
def minilm() -> Backbone:
    return load_backbone("minilm-l6")


@pytest.fixture(scope="module")
def ptv2_run(minilm: Backbone) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """One short 16-shot P-tuning v2 run on MR, and the backbone's weights from before it."""
    before = {k: v.detach().clone() for k, v in minilm.state_dict().items()}
    cfg = ExperimentConfig(
        data=DataConfig(task="mr", shots=16, data_seed=13, max_test=200),
        backbone="minilm-l6", method="p_tuning_v2", method_options={"num_tokens": NUM_TOKENS},
        max_length=MAX_LENGTH,
        train=TrainConfig(max_steps=STEPS, eval_every=10, batch_size=8, quiet=True, device="cpu", seed=42),
    )
    # no untrained baseline: it costs another pass over the test set and is not under test here
    result = run_experiment(cfg, backbone=minilm, baseline=False, log=lambda *_: None)
    return result, before


@pytest.mark.real
def test_minilm_backbone_info(minilm: Backbone) -> None:
    info = minilm.info
    assert (info.name, info.model_type) == ("minilm-l6", "bert")
    assert (info.num_layers, info.hidden_size, info.num_heads, info.vocab_size) == (6, 384, 12, 30522)
    assert info.head_dim == 32 and info.max_positions == 512 and not info.is_decoder
    assert minilm.layers is minilm.model.encoder.layer and len(minilm.layers) == 6
    assert len(minilm.tokenizer) == 30522
    assert all(not p.requires_grad for p in minilm.parameters())
    assert 22_000_000 < sum(p.numel() for p in minilm.parameters()) < 23_000_000


@pytest.mark.real
def test_ptv2_run_gives_sane_numbers(ptv2_run: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> None:
    result, _ = ptv2_run
    assert (result["task"], result["method"], result["backbone"]) == ("mr", "p_tuning_v2", "minilm-l6")
    assert result["steps"] == STEPS and result["best_step"] in (10, 20)
    assert [step for step, _ in result["dev_curve"]] == [10, 20]
    assert "untrained_test_accuracy" not in result
    for key in ("dev_accuracy", "test_accuracy", "test_macro_f1", "majority_test_accuracy"):
        assert 0.0 <= result[key] <= 1.0, key
    # P-tuning v2 on every layer plus a linear head over the mean-pooled input
    assert result["trainable_params"] == 6 * NUM_TOKENS * 384 + 384 * 2 + 2
    assert result["trainable_share"] < 0.01
    assert result["seconds_per_step"] > 0 and result["train_seconds"] > 0


@pytest.mark.real
def test_ptv2_run_leaves_every_backbone_weight_untouched(
        minilm: Backbone, ptv2_run: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> None:
    _, before = ptv2_run
    after = minilm.state_dict()
    assert set(after) == set(before)
    changed = [k for k, v in after.items() if not torch.equal(v, before[k])]
    assert not changed, f"backbone weights changed: {changed[:5]}"
    assert all(not p.requires_grad for p in minilm.parameters())


@pytest.mark.real
def test_ptv2_adapter_round_trip_gives_identical_logits(
        minilm: Backbone, ptv2_run: tuple[dict[str, Any], dict[str, torch.Tensor]], tmp_path: Path) -> None:
    model: PromptModel = ptv2_run[0]["_model"]
    texts = [e.text_a for e in load_task("mr").test[::100]] + [("a gorgeous, moving film", "it is good")]
    model.save_pretrained(tmp_path / "adapter")
    loaded = PromptModel.from_pretrained(tmp_path / "adapter", backbone=minilm)
    a, b = model.trainable_state(), loaded.trainable_state()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(model.predict_proba(texts), loaded.predict_proba(texts))
    assert loaded.labels == ["negative", "positive"] and loaded.task == "mr"
    assert loaded.max_length == MAX_LENGTH


@pytest.mark.real
def test_max_test_subset_holds_every_class() -> None:
    """``max_test`` is for quick runs; its subset must still measure both classes."""
    data = load_task("mr")
    subset = make_split(DataConfig(task="mr", shots=16, max_test=200), data).test
    counts = collections.Counter(e.label for e in subset)
    assert len(subset) == 200
    assert min(counts[0], counts[1]) >= 60, f"first 200 MR test examples per class: {dict(counts)}"


# ---------------------------------------------------------------------------- other families, from configs
def _save_distilbert(path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertModel

    tokenizer = tiny_tokenizer("bert")
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                              max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    DistilBertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def _save_gpt2(path: Path) -> None:
    from transformers import GPT2Config, GPT2Model

    tokenizer = tiny_tokenizer("llama")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2Model(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


FAMILIES = {"distilbert": _save_distilbert, "gpt2": _save_gpt2}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def saved_family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp(request.param)
    FAMILIES[request.param](path)
    return request.param, path


def _batch(backbone: Backbone, examples: list[Example]):  # type: ignore[no-untyped-def]
    return collate(encode(backbone.tokenizer, examples, 32), int(backbone.tokenizer.pad_token_id),
                   backbone.info.is_decoder)


def test_local_directory_backbone_finds_its_layers(saved_family: tuple[str, Path]) -> None:
    family, path = saved_family
    backbone = load_backbone(str(path))
    info = backbone.info
    assert info.model_type == family and info.name == str(path.resolve())
    assert (info.num_layers, info.hidden_size, info.num_heads, info.head_dim) == (2, 32, 4, 8)
    assert info.max_positions == 128 and info.vocab_size == len(backbone.tokenizer)
    expected = backbone.model.transformer.layer if family == "distilbert" else backbone.model.h
    assert backbone.layers is expected
    assert info.is_decoder == (family == "gpt2")
    assert (backbone.lm_head is not None) == (family == "gpt2")
    assert all(not p.requires_grad for p in backbone.parameters())


@pytest.mark.parametrize("method", ["prompt_tuning", "p_tuning_v2"])
def test_prompt_methods_run_on_other_families(saved_family: tuple[str, Path], method: str) -> None:
    _, path = saved_family
    backbone = load_backbone(str(path))
    before = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    model = PromptModel.build(backbone, method, ["negative", "positive"], method_options={"num_tokens": 3})
    toy = toy_examples(4)
    batch = _batch(backbone, toy)
    model.train()
    out = model(batch)
    assert out.logits.shape == (8, 2) and out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    trainable = model.trainable_parameters()
    method_params = list(model.method.parameters())
    assert method_params and all(p.grad is not None and p.grad.abs().sum() > 0 for p in method_params)
    if method == "p_tuning_v2":
        grads = model.method.prompts.grad  # (layers, P, H): every layer's prompt must reach the output
        assert all(grads[i].abs().sum() > 0 for i in range(backbone.info.num_layers))
    assert {id(p) for p in trainable} == {id(p) for p in method_params} | {id(p) for p in model.head.parameters()}
    assert all(p.grad is None for p in backbone.parameters())
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    # a row's prediction does not depend on the padding its batch-mates force on it
    model.eval()
    with torch.no_grad():
        alone = model(_batch(backbone, toy[:1])).logits
        together = model(_batch(backbone, [toy[0], Example("really " * 12 + "boring plot", 0)])).logits[:1]
    assert torch.allclose(alone, together, atol=1e-5)
