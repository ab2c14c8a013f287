"""`promptlearning methods | head` closes the pipe early: that must end quietly with exit 0."""

from __future__ import annotations

import io
import sys

import pytest

from promptlearning.cli.main import main


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_closed_pipe_is_not_an_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["methods"]) == 0
    assert "Traceback" not in capsys.readouterr().err
