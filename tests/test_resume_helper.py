"""The kill-and-resume helper itself: it fails a run that never reaches its cut, and patches nothing for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from .resume_helper import Cut, interrupted, run_interrupted_then_resumed


class Counter:
    """A resumable toy: counts to ``stop``, saving its count after every step; resume reads it back."""

    def step(self, value: int) -> int:
        return value + 1

    def run(self, out: Path, resume: bool, stop: int = 5) -> int:
        value = int((out / "count").read_text()) if resume else 0
        out.mkdir(parents=True, exist_ok=True)
        while value < stop:
            value = self.step(value)
            (out / "count").write_text(str(value))
        return value


def test_the_cut_interrupts_and_the_resume_does_only_what_was_left(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = run_interrupted_then_resumed(monkeypatch, Counter().run, tmp_path, Cut.at_call(Counter, "step", 3))
    assert (run.whole, run.resumed) == (5, 5)
    assert run.calls == {"whole": 5, "cut": 3, "resumed": 3}  # two steps saved before the cut, three left
    assert Counter.step is Counter.__dict__["step"] and Counter().step(1) == 2  # nothing stays patched


def test_a_run_that_ends_before_its_cut_fails_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AssertionError, match="before the cut"), interrupted(monkeypatch, Cut.at_call(Counter, "step", 9)):
        Counter().run(tmp_path, False)


def test_a_caught_interrupt_still_counts_as_the_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def like_the_cli() -> int:  # main() turns Ctrl-C into exit code 130
        try:
            Counter().run(tmp_path, False)
        except KeyboardInterrupt:
            return 130
        return 0

    with interrupted(monkeypatch, Cut(Counter, "step", when=lambda _self, value: value == 2)) as calls:
        assert like_the_cli() == 130
    assert calls.fired and calls.n == 3


def test_a_cut_names_one_place() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Cut(Counter, "step", at=1, when=lambda *_: True)
    with pytest.raises(ValueError, match="no callable"):
        Cut(Counter, "stpe", at=1)
