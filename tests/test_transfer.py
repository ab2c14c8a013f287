"""Prompt transfer (source ranking, starting from a source prompt) and the prompt_attention method."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.batching import collate
from promptlearning.data.examples import Example
from promptlearning.errors import AdapterError, ConfigError, UnknownNameError
from promptlearning.injection import make_context
from promptlearning.methods.prompt_attention import PromptAttention
from promptlearning.model import PromptModel
from promptlearning.runs.transfer import TransferConfig, load_sources, run_transfer

from .meta_toys import toy_tasks  # noqa: F401  (fixture)

LABELS = ["negative", "positive"]
FAST = {"shots": 4, "steps": 2, "eval_every": 2, "probe_steps": 2, "device": "cpu"}


def _source(tmp_path: Path, backbone: Backbone, task: str, seed: int, method: str = "prompt_tuning",
            num_tokens: int = 3) -> Path:
    model = PromptModel.build(backbone, method, LABELS, method_options={"num_tokens": num_tokens, "init_seed": seed},
                              task=task)
    return model.save_pretrained(tmp_path / f"{task}-{method}-{seed}")


def _attention(backbone: Backbone, sources: list[Path], **options: object) -> PromptModel:
    return PromptModel.build(backbone, "prompt_attention", LABELS,
                             method_options={"sources": [str(s) for s in sources], "num_tokens": 3, **options})


def _ctx(model: PromptModel, texts: list[str]):  # type: ignore[no-untyped-def]
    batch = collate(model.encode([Example(t, 0) for t in texts]), model.pad_id, model.left_pad)
    return batch, make_context(model.backbone, model.method, batch)


# ---------------------------------------------------------------------------- prompt_attention
def test_one_source_with_the_target_switched_off_is_exactly_the_source(tmp_path: Path,
                                                                       any_backbone: Backbone) -> None:
    src = _source(tmp_path, any_backbone, "toy_movies", seed=3)
    model = _attention(any_backbone, [src])
    method = model.method
    assert isinstance(method, PromptAttention)
    with torch.no_grad():
        method.bias[-1] = float("-inf")  # the target's weight is forced to zero
        method.up.weight.normal_()  # inputs now get different attention logits
    _, ctx = _ctx(model, ["great movie", "awful film so boring"])
    source = load_sources([src], any_backbone)[0].prompt
    out = method.input_prompt(ctx)
    assert torch.equal(out, source.expand(2, -1, -1))


def test_without_sources_it_is_the_plain_target_prompt(bert: Backbone) -> None:
    model = _attention(bert, [])
    _, ctx = _ctx(model, ["great movie", "bad acting"])
    assert torch.equal(model.method.input_prompt(ctx), model.method.prompt.expand(2, -1, -1))


def test_each_input_gets_its_own_mixture(tmp_path: Path, bert: Backbone) -> None:
    model = _attention(bert, [_source(tmp_path, bert, "toy_movies", 1), _source(tmp_path, bert, "toy_phones", 2)])
    method = model.method
    assert isinstance(method, PromptAttention)
    _, ctx = _ctx(model, ["great movie", "phone broke"])
    weights = method.mixing_weights(ctx)
    assert weights.shape == (2, 3) and torch.allclose(weights, torch.full((2, 3), 1 / 3))  # up starts at zero
    with torch.no_grad():
        method.up.weight.normal_(std=5.0)
    weights = method.mixing_weights(ctx)
    assert torch.allclose(weights.sum(-1), torch.ones(2)) and not torch.allclose(weights[0], weights[1])
    mixed = torch.einsum("bj,jph->bph", weights, method.candidates())
    assert torch.allclose(method.input_prompt(ctx), mixed)


def test_the_saved_adapter_needs_no_source_files(tmp_path: Path, bert: Backbone) -> None:
    sources = [_source(tmp_path, bert, "toy_movies", 1), _source(tmp_path, bert, "toy_phones", 2)]
    expected = torch.stack([s.prompt for s in load_sources(sources, bert)])
    model = _attention(bert, sources)
    with torch.no_grad():
        model.method.up.weight.normal_()
    saved = model.save_pretrained(tmp_path / "attn")
    for s in sources:
        shutil.rmtree(s)
    config = json.loads((saved / "adapter_config.json").read_text())["method_config"]
    assert config["sources"] == [] and config["num_sources"] == 2 and config["source_names"] == ["toy_movies",
                                                                                                   "toy_phones"]
    loaded = PromptModel.from_pretrained(saved, backbone=bert)
    assert torch.equal(loaded.method.source_prompts, expected)
    assert not any(p is loaded.method.source_prompts for p in loaded.trainable_parameters())  # frozen
    model.eval()
    loaded.eval()
    batch, _ = _ctx(model, ["great movie", "phone broke"])
    assert torch.equal(model(batch).logits, loaded(batch).logits)


def test_handed_in_source_prompts_build_the_same_method_as_source_directories(tmp_path: Path,
                                                                               bert: Backbone) -> None:
    sources = [_source(tmp_path, bert, "toy_movies", 1), _source(tmp_path, bert, "toy_phones", 2)]
    for init in ("vocab", "sources"):
        from_files = _attention(bert, sources, init=init)
        handed = PromptModel.build(bert, "prompt_attention", LABELS,
                                   method_options={"num_sources": 2, "num_tokens": 3, "init": init})
        method = handed.method
        assert isinstance(method, PromptAttention)
        method.set_source_prompts([(s.task, s.prompt) for s in load_sources(sources, bert)])
        a, b = from_files.trainable_state(), handed.trainable_state()
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
        assert from_files.method.config.to_dict() == method.config.to_dict()
    with pytest.raises(ConfigError, match="num_sources=1"):
        method.set_source_prompts([("toy_movies", load_sources(sources[:1], bert)[0].prompt)])


def test_bad_sources_are_clear_errors(tmp_path: Path, bert: Backbone, llama: Backbone) -> None:
    with pytest.raises(AdapterError, match="--backbone tiny-llama"):
        _attention(bert, [_source(tmp_path, llama, "toy_movies", 1)])
    with pytest.raises(AdapterError, match="no input prompt"):
        _attention(bert, [_source(tmp_path, bert, "toy_movies", 1, method="p_tuning_v2")])
    with pytest.raises(ConfigError, match="num_tokens=4"):
        _attention(bert, [_source(tmp_path, bert, "toy_movies", 1, num_tokens=4)])
    with pytest.raises(AdapterError, match="does not exist"):
        _attention(bert, [tmp_path / "missing"])
    with pytest.raises(ConfigError, match="init=sources"):
        _attention(bert, [], init="sources")


# ---------------------------------------------------------------------------- ranking and training
def test_a_source_of_the_target_task_itself_ranks_first(tmp_path: Path, bert: Backbone,
                                                        toy_tasks: list[str]) -> None:  # noqa: F811
    sources = [_source(tmp_path, bert, "toy_phones", 1), _source(tmp_path, bert, "toy_films", 2),
               _source(tmp_path, bert, "toy_movies", 3)]
    for by in ("support", "description"):
        result = run_transfer("toy_films", sources, TransferConfig(by=by, scratch=False, **FAST),  # type: ignore[arg-type]
                              backbone=bert, log=lambda _: None)
        ranking = result["ranking"]
        assert ranking[0]["task"] == "toy_films" and ranking[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
        assert [r["similarity"] for r in ranking] == sorted((r["similarity"] for r in ranking), reverse=True)


def test_the_target_starts_from_the_best_source_prompt(tmp_path: Path, bert: Backbone,
                                                       toy_tasks: list[str]) -> None:  # noqa: F811
    sources = [_source(tmp_path, bert, "toy_phones", 1), _source(tmp_path, bert, "toy_movies", 2)]
    cfg = TransferConfig(scratch=False, lr=1e-12, output_dir=str(tmp_path / "out"), **FAST)  # type: ignore[arg-type]
    result = run_transfer("toy_movies", sources, cfg, backbone=bert, log=lambda _: None)
    assert result["started_from"] == "toy_movies"
    trained = PromptModel.from_pretrained(result["adapter"], backbone=bert)
    # a learning rate of 1e-12: the prompt is still the source's
    assert torch.allclose(trained.method.prompt, load_sources([sources[1]], bert)[0].prompt, atol=1e-8)
    assert (tmp_path / "out" / "transfer.md").read_text().startswith("Transfer to toy_movies")


def test_prompt_similarity_ranking_and_the_attention_variant(tmp_path: Path, bert: Backbone,
                                                             toy_tasks: list[str]) -> None:  # noqa: F811
    sources = [_source(tmp_path, bert, "toy_phones", 1), _source(tmp_path, bert, "toy_movies", 2)]
    cfg = TransferConfig(by="prompt", variant="attention", output_dir=str(tmp_path / "out"), **FAST)  # type: ignore[arg-type]
    result = run_transfer("toy_films", sources, cfg, backbone=bert, log=lambda _: None)
    assert {r["task"] for r in result["ranking"]} == {"toy_phones", "toy_movies"}
    assert all(-1.0 <= r["similarity"] <= 1.0 for r in result["ranking"])
    assert set(result["mean_attention"]) == {"toy_phones", "toy_movies", "target"}
    assert sum(result["mean_attention"].values()) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= result["scratch_accuracy"] <= 1.0
    loaded = PromptModel.from_pretrained(result["adapter"], backbone=bert)
    assert type(loaded.method).name == "prompt_attention"


def test_transfer_errors(tmp_path: Path, bert: Backbone, toy_tasks: list[str]) -> None:  # noqa: F811
    with pytest.raises(UnknownNameError):
        run_transfer("nope", [_source(tmp_path, bert, "toy_movies", 1)], backbone=bert)
    with pytest.raises(ConfigError, match="--source"):
        run_transfer("toy_movies", [], backbone=bert)
    mine = _source(tmp_path, bert, "my_reviews", 1)  # trained on the user's own data: no registered task
    with pytest.raises(ConfigError, match="--by prompt"):
        run_transfer("toy_movies", [mine], TransferConfig(**FAST), backbone=bert)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown ranking"):
        TransferConfig(by="vibes")


def test_transfer_command(tmp_path: Path, bert: Backbone, llama: Backbone, capsys: pytest.CaptureFixture[str],
                          toy_tasks: list[str]) -> None:  # noqa: F811
    src = _source(tmp_path, bert, "toy_movies", 1)
    fast = ["--shots", "4", "--steps", "2", "--eval-every", "2", "--device", "cpu"]
    assert main(["transfer", "--target", "toy_films", "--source", str(src), *fast,
                 "--output", str(tmp_path / "out")]) == 0
    assert "adapter saved to" in capsys.readouterr().out
    for argv in (["--target", "toy_films"], ["--target", "nope", "--source", str(src)],
                 ["--target", "toy_films", "--source", str(_source(tmp_path, llama, "toy_movies", 1)),
                  "--backbone", "tiny-bert"]):
        assert main(["transfer", *argv, *fast]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")


def test_progress_names_each_run_and_estimates_the_second(tmp_path: Path, bert: Backbone,
                                                          toy_tasks: list[str]) -> None:  # noqa: F811
    sources = [_source(tmp_path, bert, "toy_phones", 1)]
    lines: list[str] = []
    run_transfer("toy_films", sources, TransferConfig(**FAST), backbone=bert, log=lines.append)  # type: ignore[arg-type]
    runs = [line for line in lines if line.startswith("training toy_films")]
    assert len(runs) == 2 and "run 1 of 2" in runs[0] and "run 2 of 2" in runs[1] and "s left" in runs[1]


def test_a_source_exported_to_peft_is_read_as_the_same_prompt(tmp_path: Path, bert: Backbone) -> None:
    """`export --to peft` keeps our config beside PEFT's files; transfer refused such a folder as promptless."""
    from promptlearning.runs.peft_interop import export_adapter

    pytest.importorskip("peft")
    src = _source(tmp_path, bert, "toy_movies", seed=3)
    exported = export_adapter(src, tmp_path / "exported")
    ours, theirs = load_sources([src], bert)[0], load_sources([Path(exported)], bert)[0]
    assert torch.equal(ours.prompt, theirs.prompt)
