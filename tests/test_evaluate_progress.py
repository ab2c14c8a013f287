"""`evaluate` shows a bar with the time left on a terminal, and nothing when asked for none or when piped."""

from __future__ import annotations

import pytest

from promptlearning.backbones import Backbone
from promptlearning.data.examples import Example
from promptlearning.model import PromptModel
from promptlearning.training import metrics


def _scores(bert: Backbone, toy: list[Example], progress: bool) -> dict[str, float]:
    model = PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    return metrics.evaluate(model, model.encode(toy), batch_size=8, progress=progress)


def test_a_terminal_gets_a_bar_over_the_examples(bert: Backbone, toy: list[Example],
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "stderr_is_terminal", lambda: True)
    quiet = _scores(bert, toy, progress=False)
    assert capsys.readouterr().err == ""
    shown = _scores(bert, toy, progress=True)
    err = capsys.readouterr().err
    assert "evaluate" in err and f"{len(toy)}/{len(toy)}" in err
    assert shown == quiet


def test_piped_output_gets_no_redraws(bert: Backbone, toy: list[Example], capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "stderr_is_terminal", lambda: False)
    _scores(bert, toy, progress=True)
    assert capsys.readouterr().err == ""
