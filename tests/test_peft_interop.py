"""Adapters move between promptlearning and Hugging Face PEFT with equal outputs, both ways.

Equal outputs means: the backbone's hidden states from PEFT's own forward (``PeftModel``) and from
ours agree on every attended position (prompt tuning: prompt positions too), within 1e-5.
Inputs are unpadded for decoders: PEFT numbers a left-padded row's pads as positions, we do not.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.batching import Batch, collate, encode
from promptlearning.data.examples import Example
from promptlearning.errors import AdapterError
from promptlearning.injection import run_backbone
from promptlearning.model import PromptModel
from promptlearning.runs.peft_interop import export_adapter, import_peft

from .test_prefix_families import _tiny

peft = pytest.importorskip("peft")
TOL = 1e-5
CASES = [("prompt_tuning", {"num_tokens": 3, "init": "random", "init_std": 0.5}),
         ("prefix_tuning", {"num_tokens": 3, "peft_positions": True}),
         ("prefix_tuning", {"num_tokens": 3, "reparam": False, "peft_positions": True})]


@pytest.fixture(scope="module")
def gqa_llama() -> Backbone:
    return _tiny("llama")  # 4 query heads, 2 key/value heads: PEFT's prefix shape differs from the hidden size


@pytest.fixture(params=["bert", "llama", "gqa_llama"])
def backbone(request: pytest.FixtureRequest, bert: Backbone, llama: Backbone, gqa_llama: Backbone) -> Backbone:
    return {"bert": bert, "llama": llama, "gqa_llama": gqa_llama}[request.param]


def _batch(backbone: Backbone) -> Batch:
    texts = ["good movie and fun plot", "bad film", "i love this"]
    if backbone.info.is_decoder:
        texts = ["good movie", "bad film", "i love"]  # equal token counts: no padding
    items = encode(backbone.tokenizer, [Example(t, 0) for t in texts], 32)
    return collate(items, int(backbone.tokenizer.pad_token_id or 0), backbone.info.is_decoder)


def _ours(model: PromptModel, batch: Batch) -> torch.Tensor:
    with torch.no_grad():
        hidden, _, _ = run_backbone(model.backbone, model.method.eval(), batch)
    return hidden  # (B, P + L, H) for prompt tuning, (B, L, H) for prefixes


def _peft(peft_model: Any, batch: Batch) -> torch.Tensor:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return peft_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state


def _max_diff(ours: torch.Tensor, theirs: torch.Tensor, batch: Batch) -> float:
    assert ours.shape == theirs.shape
    prompt = ours.shape[1] - batch.attention_mask.shape[1]
    mask = torch.cat([batch.attention_mask.new_ones(len(batch), prompt), batch.attention_mask], 1).bool()
    return float((ours - theirs).abs()[mask].max())


@pytest.mark.parametrize("method,options", CASES)
def test_our_adapter_runs_in_peft_with_equal_outputs(backbone: Backbone, method: str, options: dict[str, Any],
                                                     tmp_path: Path) -> None:
    model = PromptModel.build(backbone, method, ["neg", "pos"], method_options=options).eval()
    model.save_pretrained(tmp_path / "ours")
    export_adapter(tmp_path / "ours", tmp_path / "peft")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = peft.PeftModel.from_pretrained(copy.deepcopy(backbone.model), str(tmp_path / "peft")).eval()
    batch = _batch(backbone)
    ours = _ours(model, batch)
    assert _max_diff(ours, _peft(theirs, batch), batch) <= TOL
    # and the exported folder is still ours: labels, head and prompt come back exactly
    again = PromptModel.from_pretrained(tmp_path / "peft", backbone=backbone).eval()
    assert again.labels == ["neg", "pos"]
    assert torch.allclose(again(batch).logits, model(batch).logits, atol=TOL)
    assert again.predict(["good movie"]) == model.predict(["good movie"])


@pytest.mark.parametrize("kind", ["prompt", "prefix", "prefix_projection"])
def test_a_peft_adapter_runs_here_with_equal_outputs(backbone: Backbone, kind: str, tmp_path: Path) -> None:
    common = {"task_type": peft.TaskType.FEATURE_EXTRACTION, "num_virtual_tokens": 3}
    config = (peft.PromptTuningConfig(**common) if kind == "prompt"
              else peft.PrefixTuningConfig(**common, prefix_projection=kind == "prefix_projection"))
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(3)
        trained = peft.get_peft_model(copy.deepcopy(backbone.model), config)
        trained.save_pretrained(str(tmp_path / "peft"))
        theirs = peft.PeftModel.from_pretrained(copy.deepcopy(backbone.model), str(tmp_path / "peft")).eval()
    model = import_peft(tmp_path / "peft", ["neg", "pos"], backbone=backbone).eval()
    batch = _batch(backbone)
    ours = _ours(model, batch)
    assert _max_diff(ours, _peft(theirs, batch), batch) <= TOL
    assert ours.abs().max() > 0 and not torch.allclose(ours, _ours(PromptModel.build(
        backbone, model.method.name, ["a", "b"], method_options={"num_tokens": 3}).eval(), batch))


def test_the_cli_exports_and_imports(bert: Backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("promptlearning.backbones.load_backbone", lambda name: bert)
    PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2}).save_pretrained(
        tmp_path / "ours")
    assert main(["export", "--adapter", str(tmp_path / "ours"), "--to", "peft", "--output", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "adapter_config.json").read_text())["peft_type"] == "PROMPT_TUNING"
    plain = Path(shutil.copytree(tmp_path / "p", tmp_path / "plain"))  # as PEFT alone would have written it
    for side in ("promptlearning_config.json", "promptlearning_extra.safetensors"):
        (plain / side).unlink(missing_ok=True)
    assert main(["export", "--adapter", str(plain), "--to", "promptlearning", "--labels", "no,yes",
                 "--backbone", "tiny-bert", "--output", str(tmp_path / "back")]) == 0
    back = PromptModel.from_pretrained(tmp_path / "back", backbone=bert)
    assert back.labels == ["no", "yes"] and type(back.method).name == "prompt_tuning"
    assert "untrained parameters" in capsys.readouterr().err  # the default classification head: random weights
    assert main(["export", "--adapter", str(plain), "--to", "promptlearning", "--labels", "no,yes",
                 "--backbone", "tiny-bert", "--head", "label_description", "--output", str(tmp_path / "back2")]) == 0
    assert "untrained" not in capsys.readouterr().err
    weights = (tmp_path / "ours" / "adapter_model.safetensors").read_bytes()
    for output in (tmp_path / "ours", tmp_path / "ours" / "peft"):  # over, or into, the adapter it converts
        assert main(["export", "--adapter", str(tmp_path / "ours"), "--to", "peft", "--output", str(output)]) == 2
        assert "would overwrite the adapter it converts" in capsys.readouterr().err
    assert (tmp_path / "ours" / "adapter_model.safetensors").read_bytes() == weights
    (tmp_path / "export.yaml").write_text(f"adapter: {tmp_path / 'ours'}\nto: peft\n")
    assert main(["export", "--config", str(tmp_path / "export.yaml"), "--output", str(tmp_path / "p2")]) == 0
    assert (tmp_path / "p2" / "adapter_model.safetensors").is_file()
    assert main(["export", "--adapter", str(tmp_path / "ours"), "--to", "peft"]) == 2  # no --output: one line
    assert "export needs --output" in capsys.readouterr().err
    capsys.readouterr()


def test_export_never_replaces_another_adapter_unasked(bert: Backbone, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("promptlearning.backbones.load_backbone", lambda name: bert)
    for name in ("ours", "other"):
        PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2}).save_pretrained(
            tmp_path / name)
    kept = (tmp_path / "other" / "adapter_model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["export", "--adapter", str(tmp_path / "ours"), "--to", "peft", "--output", str(tmp_path / "other")]) == 2
    assert "holds an adapter already" in capsys.readouterr().err
    assert (tmp_path / "other" / "adapter_model.safetensors").read_bytes() == kept
    assert main(["export", "--adapter", str(tmp_path / "ours"), "--to", "peft", "--output", str(tmp_path / "other"),
                 "--overwrite"]) == 0
    assert (tmp_path / "other" / "adapter_model.safetensors").read_bytes() != kept


def test_our_peft_export_comes_back_whole(bert: Backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Back from PEFT, our own export keeps its labels and trained head (it asked for --labels and lost the head)."""
    monkeypatch.setattr("promptlearning.backbones.load_backbone", lambda name: bert)
    model = PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.5)  # a head no fresh build has
    model.save_pretrained(tmp_path / "ours")
    assert main(["export", "--adapter", str(tmp_path / "ours"), "--to", "peft", "--output", str(tmp_path / "p")]) == 0
    assert main(["export", "--adapter", str(tmp_path / "p"), "--to", "promptlearning",
                 "--output", str(tmp_path / "back")]) == 0
    back = PromptModel.from_pretrained(tmp_path / "back", backbone=bert)
    assert back.labels == ["neg", "pos"]
    for mine, theirs in zip(model.head.state_dict().values(), back.head.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)
    capsys.readouterr()
    assert main(["export", "--adapter", str(tmp_path / "p"), "--to", "promptlearning", "--labels", "a,b",
                 "--output", str(tmp_path / "back2")]) == 2
    assert "drop --labels" in capsys.readouterr().err


def _lora(directory: Path, backbone: Backbone) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft.get_peft_model(copy.deepcopy(backbone.model), peft.LoraConfig(r=2, target_modules=["query"])
                            ).save_pretrained(str(directory))
    return directory


def test_foreign_folders_are_named_with_what_to_do(bert: Backbone, tmp_path: Path) -> None:
    lora = _lora(tmp_path / "lora", bert)
    for load in (lambda d: PromptModel.from_pretrained(d, backbone=bert), lambda d: export_adapter(d, tmp_path / "x")):
        with pytest.raises(AdapterError, match=r"PEFT LORA adapter.*PeftModel.from_pretrained") as err:
            load(lora)
        assert not re.search(r"\bretrain", str(err.value))
        (tmp_path / "random").mkdir(exist_ok=True)
        (tmp_path / "random" / "notes.txt").write_text("hello")
        with pytest.raises(AdapterError, match="not an adapter.*train --output") as err:
            load(tmp_path / "random")
        assert not re.search(r"\bretrain", str(err.value))
    with pytest.raises(AdapterError, match="not a PEFT one"):
        import_peft(_ours_folder(bert, tmp_path), ["a", "b"], backbone=bert)


def _ours_folder(bert: Backbone, tmp_path: Path) -> Path:
    return PromptModel.build(bert, "prompt_tuning", ["a", "b"]).save_pretrained(tmp_path / "ours")


def test_a_plain_peft_prompt_says_how_to_convert_it(bert: Backbone, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft.get_peft_model(copy.deepcopy(bert.model), peft.PromptTuningConfig(
            task_type=peft.TaskType.FEATURE_EXTRACTION, num_virtual_tokens=2)).save_pretrained(str(tmp_path / "p"))
    with pytest.raises(AdapterError, match="PEFT prompt_tuning adapter without labels.*--to promptlearning --labels"):
        PromptModel.from_pretrained(tmp_path / "p", backbone=bert)


def test_exports_that_would_change_outputs_are_refused(bert: Backbone, tmp_path: Path) -> None:
    PromptModel.build(bert, "prefix_tuning", ["a", "b"], method_options={"num_tokens": 2}).save_pretrained(
        tmp_path / "prefix")
    with pytest.raises(AdapterError, match="numbers input positions from 0.*peft_positions=true"):
        export_adapter(tmp_path / "prefix", tmp_path / "out")
    PromptModel.build(bert, "p_tuning_v2", ["a", "b"], method_options={"num_tokens": 2}).save_pretrained(
        tmp_path / "deep")
    with pytest.raises(AdapterError, match="p_tuning_v2, which PEFT has no form of"):
        export_adapter(tmp_path / "deep", tmp_path / "out")
    assert not (tmp_path / "out").exists()
