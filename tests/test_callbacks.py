"""The trainer's public callback API: which hooks run when, with what, and how a callback stops a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import promptlearning
from promptlearning.backbones import Backbone
from promptlearning.data.batching import encode
from promptlearning.model import PromptModel
from promptlearning.training import TrainConfig, Trainer, TrainerCallback, TrainResult

from .conftest import toy_examples


class Recorder(TrainerCallback):
    """Every hook call, in order, as (hook, step, details)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any]] = []

    def on_train_begin(self, trainer: Trainer) -> None:
        self.calls.append(("begin", trainer.progress.step, None))

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.calls.append(("step", record["step"], sorted(record)))

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.calls.append(("evaluate", record["step"], record["dev_accuracy"]))

    def on_save(self, trainer: Trainer, path: Path, kind: str) -> None:
        self.calls.append(("save", trainer.progress.step, (path.name, kind)))

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.calls.append(("end", result.steps, result.stop_reason))


def _trainer(backbone: Backbone, out: Path | None, callbacks: list[TrainerCallback], **overrides: Any) -> Trainer:
    model = PromptModel.build(backbone, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    cfg = TrainConfig(**{"max_steps": 6, "eval_every": 3, "checkpoint_every": 3, "quiet": True,
                         "train_past_perfect_dev": True, **overrides})
    train = encode(backbone.tokenizer, toy_examples(4, seed=1), 32)
    dev = encode(backbone.tokenizer, toy_examples(2, seed=2), 32)
    return Trainer(model, cfg, train, dev, out, callbacks=callbacks)


def test_hooks_run_in_order_with_their_records(bert: Backbone, tmp_path: Path) -> None:
    recorder = Recorder()
    _trainer(bert, tmp_path, [recorder]).fit()
    hooks = [c[0] for c in recorder.calls]
    assert hooks[0] == "begin" and hooks[-1] == "end"
    assert [c[1] for c in recorder.calls if c[0] == "step"] == [1, 2, 3, 4, 5, 6]
    assert all(c[2] == ["loss", "lr", "step"] for c in recorder.calls if c[0] == "step")
    assert [c[1] for c in recorder.calls if c[0] == "evaluate"] == [3, 6]
    checkpoints = [c[1] for c in recorder.calls if c[0] == "save" and c[2] == ("checkpoint", "checkpoint")]
    assert checkpoints == [3, 6]
    assert ("save", 3, ("best", "best")) in recorder.calls  # the first evaluation always keeps a best
    # the evaluation's record is the one written to metrics.jsonl
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    dev = {r["step"]: r["dev_accuracy"] for r in written if "dev_accuracy" in r}
    assert {c[1]: c[2] for c in recorder.calls if c[0] == "evaluate"} == dev
    assert recorder.calls[-1] == ("end", 6, None)


def test_a_callback_stops_the_run_after_the_step_with_its_reason(bert: Backbone, tmp_path: Path) -> None:
    class StopAtTwo(TrainerCallback):
        def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
            if record["step"] == 2:
                trainer.request_stop("pruned by a test")

    recorder = Recorder()
    result = _trainer(bert, tmp_path, [StopAtTwo(), recorder]).fit()
    assert result.steps == 2 and result.stopped_early and result.stop_reason == "pruned by a test"
    assert recorder.calls[-1] == ("end", 2, "pruned by a test")
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 2, "event": "early_stop", "reason": "pruned by a test"} in written
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert state["step"] == 2 and state["stopped_early"]  # the stop is checkpointed: a resume does not continue


def test_an_exception_in_a_hook_reaches_the_caller(bert: Backbone) -> None:
    class Pruned(Exception):
        pass

    class Prune(TrainerCallback):
        def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
            raise Pruned(record["step"])

    with pytest.raises(Pruned, match="3"):
        _trainer(bert, None, [Prune()]).fit()


def test_patience_stop_names_its_reason(bert: Backbone) -> None:
    result = _trainer(bert, None, [], patience=1, max_steps=50, eval_every=1, lr=1e-9, head_lr=1e-9).fit()
    assert result.stopped_early and "patience" in (result.stop_reason or "")


def test_the_callback_api_is_public() -> None:
    assert promptlearning.TrainerCallback is TrainerCallback
    assert "TrainerCallback" in promptlearning.__all__ and "Trainer" in promptlearning.__all__
