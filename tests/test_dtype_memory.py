"""--dtype: a backbone held in bfloat16/float16, prompts and heads still float32, the dtype recorded in
the adapter and checked on load; the memory check before loading; evaluation batched by tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning import memory
from promptlearning.backbones import load_backbone
from promptlearning.cli.loading import load_model
from promptlearning.data.batching import Encoded, batches, token_batches
from promptlearning.errors import AdapterError, BackboneError, ConfigError
from promptlearning.model import PromptModel
from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.tiny import tiny_parts
from tests.conftest import toy_examples


@pytest.mark.parametrize("kind", ["bert", "llama"])
@pytest.mark.parametrize("method", ["p_tuning_v2", "prompt_tuning", "generator"])
def test_half_precision_backbone_trains_float32_prompts(kind: str, method: str) -> None:
    backbone = load_backbone(f"tiny-{kind}", "bfloat16")
    assert backbone.input_embeddings().weight.dtype == torch.bfloat16
    model = PromptModel.build(backbone, method, ["neg", "pos"])
    assert {p.dtype for p in model.trainable_parameters()} == {torch.float32}
    batch = batches(model.encode(toy_examples(2)), 4, model.pad_id, model.left_pad)[0]
    out = model(batch)
    assert out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.trainable_parameters())
    assert all(p.grad is None for p in backbone.parameters())


def test_dtype_is_recorded_and_checked(tmp_path: Path) -> None:
    texts = ["a good film", "bad acting"]
    half = PromptModel.build(load_backbone("tiny-bert", "bfloat16"), "prompt_tuning", ["neg", "pos"])
    half.save_pretrained(tmp_path / "half")
    assert json.loads((tmp_path / "half" / "adapter_config.json").read_text())["backbone"]["dtype"] == "bfloat16"
    again = load_model(str(tmp_path / "half"))  # evaluate/predict default: the dtype it was trained in
    assert again.backbone.input_embeddings().weight.dtype == torch.bfloat16
    assert torch.equal(again.predict_proba(texts), half.predict_proba(texts))
    wide = load_model(str(tmp_path / "half"), dtype="float32")  # float32 weights round to the saved bfloat16: same model
    assert wide.backbone.input_embeddings().weight.dtype == torch.float32

    full = PromptModel.build(load_backbone("tiny-bert"), "prompt_tuning", ["neg", "pos"])
    full.save_pretrained(tmp_path / "full")
    assert "dtype" not in json.loads((tmp_path / "full" / "adapter_config.json").read_text())["backbone"]
    with pytest.raises(AdapterError, match="trained on 'tiny-bert' in float32.*--dtype float32"):
        load_model(str(tmp_path / "full"), dtype="bfloat16")


def test_other_weights_in_half_precision_are_refused(tmp_path: Path) -> None:
    PromptModel.build(load_backbone("tiny-bert", "bfloat16"), "prompt_tuning", ["neg", "pos"]).save_pretrained(tmp_path)
    other = load_backbone("tiny-bert")
    with torch.no_grad():
        other.input_embeddings().weight.mul_(1.5)
    with pytest.raises(AdapterError, match="weights"):
        PromptModel.from_pretrained(tmp_path, backbone=other)


def test_dtype_is_absent_from_the_job_key_at_its_default() -> None:
    assert "dtype" not in ExperimentConfig().to_dict()
    assert ExperimentConfig(dtype="bfloat16").to_dict()["dtype"] == "bfloat16"
    with pytest.raises(ConfigError, match="unknown dtype 'float64'; choose one of: float32, bfloat16, float16"):
        ExperimentConfig(dtype="float64")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_fine_tuning_a_half_precision_backbone_is_refused(dtype: str) -> None:
    # the optimizer would step the bfloat16 weights themselves: an update of 3e-5 on a weight of 0.05 rounds away
    weight = torch.tensor([0.05], dtype=torch.bfloat16)
    assert torch.equal(weight + 3e-5, weight)
    with pytest.raises(ConfigError, match=f"finetune trains the backbone's own weights.*drop --dtype {dtype}"):
        ExperimentConfig(method="finetune", dtype=dtype)
    assert ExperimentConfig(method="prompt_tuning", dtype=dtype).dtype == dtype


def test_memory_check_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 2**30
    with pytest.raises(BackboneError, match=r"needs about 8\.9 GiB .* only 6\.0 GiB is free; pass --dtype bfloat16"):
        memory.check_fits("big", 2 * 10**9, torch.float32, available=6 * gib)
    with pytest.raises(BackboneError, match="use a smaller backbone or a machine with more memory"):
        memory.check_fits("big", 2 * 10**9, torch.float32, available=1 * gib)
    memory.check_fits("big", 2 * 10**9, torch.bfloat16, available=6 * gib)  # fits: no error
    monkeypatch.setenv(memory.CHECK_ENV, "off")
    memory.check_fits("big", 2 * 10**9, torch.float32, available=1 * gib)


def test_too_big_a_folder_is_refused_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer, _ = tiny_parts("bert")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert memory.weight_count(str(tmp_path)) == sum(p.numel() for p in model.parameters())  # from the header
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    with pytest.raises(BackboneError, match="only 0.0 GiB is free"):
        load_backbone(str(tmp_path))


def test_peak_memory_is_reported() -> None:
    peak = memory.peak_memory()
    assert peak["peak_rss_mib"] > 0
    assert memory.describe_peak(peak).startswith("peak memory ")


def _rows(lengths: list[int]) -> list[Encoded]:
    return [Encoded(input_ids=(1,) * n, token_type_ids=None, label=0, task_id=0) for n in lengths]


def test_evaluation_batches_are_capped_in_tokens() -> None:
    short = _rows([10] * 20)
    assert [len(b) for b in token_batches(short, 8, 0)] == [len(b) for b in batches(short, 8, 0)] == [8, 8, 4]
    long = _rows([10, 10, 100, 100, 100, 300])
    sizes = [(len(b), b.input_ids.shape[1]) for b in token_batches(long, 8, 0, max_tokens=250)]
    assert sizes == [(2, 10), (2, 100), (1, 100), (1, 300)]  # each batch within 250 padded tokens but the lone long row
    assert sum(n for n, _ in sizes) == len(long)
