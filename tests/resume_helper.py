"""Kill a run, resume it, and check that it ends exactly where an uninterrupted run ends.

One helper for everything in the library that resumes (trainers, multi-task and meta runs,
prompt searches, the CLI). A test says how to run the thing, where to cut it and what to
compare; :func:`run_interrupted_then_resumed` runs it whole, runs it again cut (Ctrl-C raised
from inside a chosen call, as a user's interrupt would be), resumes the cut run and hands
back both results. :func:`cli_killed_then_resumed` does the same with a real ``SIGKILL`` of
a ``promptlearning`` process, so nothing (no ``finally``, no flush) runs after the cut.

Both also count the calls each phase made to the cut function. A resume that silently
started afresh would end at the very same tensors, so equal results alone prove little: a
test should also check that the resumed phase did only the work that was left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
import torch
from safetensors.torch import load_file

R = TypeVar("R")
SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Cut:
    """Where a run is cut: in the ``at``-th call (1-based) of ``owner.attribute``, or in the first
    call whose arguments satisfy ``when``. ``owner`` is a class or a module."""

    owner: Any
    attribute: str
    at: int | None = None
    when: Callable[..., bool] | None = None

    def __post_init__(self) -> None:
        if (self.at is None) == (self.when is None):
            raise ValueError("give exactly one of `at` (a call number) and `when` (a predicate)")
        if self.at is not None and self.at < 1:
            raise ValueError(f"`at` counts calls from 1 (got {self.at})")
        if not callable(getattr(self.owner, self.attribute, None)):
            raise ValueError(f"{self.owner!r} has no callable {self.attribute!r} to cut")

    @classmethod
    def at_step(cls, trainer_class: type, step: int) -> Cut:
        """In the trainer's ``training_step`` for optimisation step ``step`` (0-based), before it runs."""
        def reached(*args: Any, **kwargs: Any) -> bool:  # training_step(self, batch, step)
            return bool(kwargs.get("step", args[2] if len(args) > 2 else None) == step)

        return cls(trainer_class, "training_step", when=reached)

    @classmethod
    def at_call(cls, owner: Any, attribute: str, n: int) -> Cut:
        return cls(owner, attribute, at=n)

    def hits(self, calls: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if self.at is not None:
            return calls == self.at
        assert self.when is not None
        return bool(self.when(*args, **kwargs))

    def dotted(self) -> tuple[str, str]:
        """(module, qualified name) of the owner, to find it again in another process."""
        if isinstance(self.owner, type):
            return self.owner.__module__, self.owner.__qualname__
        return self.owner.__name__, ""


@dataclass
class Calls:
    """Calls made to the watched function in one phase; ``fired`` once the cut was reached."""

    n: int = 0
    fired: bool = False


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, attribute: str) -> Iterator[Calls]:
    """Count the calls of ``owner.attribute`` made in the body."""
    calls = Calls()
    original = getattr(owner, attribute)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.n += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, counted)
    try:
        yield calls
    finally:
        monkeypatch.setattr(owner, attribute, original)


@contextmanager
def interrupted(monkeypatch: pytest.MonkeyPatch, cut: Cut) -> Iterator[Calls]:
    """Run the body with Ctrl-C raised at the cut; fail if the body ends without reaching it.

    The interrupt may escape the body (a library call) or be caught by it (the CLI's ``main``
    turns it into exit code 130); either way the cut must have fired.
    """
    calls = Calls()
    original = getattr(cut.owner, cut.attribute)

    def cutting(*args: Any, **kwargs: Any) -> Any:
        calls.n += 1
        if not calls.fired and cut.hits(calls.n, args, kwargs):
            calls.fired = True
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(cut.owner, cut.attribute, cutting)
    try:
        yield calls
    except KeyboardInterrupt:
        pass
    finally:
        monkeypatch.setattr(cut.owner, cut.attribute, original)
    assert calls.fired, f"the run ended after {calls.n} call(s) of {cut.attribute}, before the cut: cut it earlier"


@dataclass
class Resumed(Generic[R]):
    """The uninterrupted run's result, the resumed run's, where each ran, and the calls of each phase."""

    whole: R
    resumed: R
    whole_dir: Path
    cut_dir: Path
    calls: dict[str, int] = field(default_factory=dict)  # "whole", "cut" (up to and with the cut), "resumed"


def run_interrupted_then_resumed(monkeypatch: pytest.MonkeyPatch, run: Callable[[Path, bool], R], root: Path,
                                 cut: Cut, *, before_resume: Callable[[Path], None] | None = None) -> Resumed[R]:
    """``run(directory, resume)`` to completion in ``root/whole``; again in ``root/cut``, interrupted at
    ``cut``; then ``before_resume(root/cut)`` (e.g. check what the kill left, or that a resume with
    other settings is refused); then resumed in ``root/cut``."""
    whole_dir, cut_dir = root / "whole", root / "cut"
    with counting(monkeypatch, cut.owner, cut.attribute) as whole_calls:
        whole = run(whole_dir, False)
    with interrupted(monkeypatch, cut) as cut_calls:
        run(cut_dir, False)
    if before_resume is not None:
        before_resume(cut_dir)
    with counting(monkeypatch, cut.owner, cut.attribute) as resumed_calls:
        resumed = run(cut_dir, True)
    return Resumed(whole, resumed, whole_dir, cut_dir,
                   {"whole": whole_calls.n, "cut": cut_calls.n, "resumed": resumed_calls.n})


def cli_killed_then_resumed(monkeypatch: pytest.MonkeyPatch, argv: Callable[[Path], list[str]], root: Path,
                            cut: Cut, *, resume_flag: str = "--resume") -> Resumed[int]:
    """The command ``argv(directory)`` run whole in this process; run in a child process that
    ``SIGKILL``s itself in the cut call (``cut.at`` only: a predicate cannot cross processes);
    then resumed here with ``resume_flag`` added. The results are the exit codes."""
    from promptlearning.cli.main import main

    if cut.at is None:
        raise ValueError("a killed process is cut by call number: use Cut.at_call")
    whole_dir, cut_dir = root / "whole", root / "cut"
    with counting(monkeypatch, cut.owner, cut.attribute) as whole_calls:
        whole = main(argv(whole_dir))
    kill_process_at(cut, argv(cut_dir))
    with counting(monkeypatch, cut.owner, cut.attribute) as resumed_calls:
        resumed = main([*argv(cut_dir), resume_flag])
    return Resumed(whole, resumed, whole_dir, cut_dir, {"whole": whole_calls.n, "cut": cut.at,
                                                        "resumed": resumed_calls.n})


def kill_process_at(cut: Cut, argv: list[str], timeout: float = 300.0) -> None:
    """Run ``promptlearning ARGV`` in a child process that SIGKILLs itself at the start of the cut call."""
    module, qualname = cut.dotted()
    script = textwrap.dedent(f"""
        import importlib, os, signal, sys
        owner = importlib.import_module({module!r})
        for part in {qualname!r}.split(".") if {qualname!r} else []:
            owner = getattr(owner, part)
        original = getattr(owner, {cut.attribute!r})
        calls = [0]

        def cutting(*args, **kwargs):
            calls[0] += 1
            if calls[0] == {cut.at!r}:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(owner, {cut.attribute!r}, cutting)
        from promptlearning.cli.main import main
        sys.exit(main({argv!r}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, (
        f"the process was not killed at call {cut.at} of {cut.attribute} (exit {proc.returncode}): {proc.stderr[-2000:]}")


# ---------------------------------------------------------------------------- bit-exact comparisons
def assert_same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], what: str = "state") -> None:
    """The same names, and every tensor equal bit for bit (same dtype and shape too)."""
    assert set(a) == set(b), f"{what}: names differ: {sorted(set(a) ^ set(b))}"
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, f"{what}: {name} differs in kind"
        assert torch.equal(a[name], b[name]), f"{what}: {name} differs"


def assert_same_files(a_dir: Path, b_dir: Path, names: Iterable[str]) -> None:
    """Each named file is identical in both folders: safetensors files tensor by tensor, others byte by byte."""
    for name in names:
        a, b = a_dir / name, b_dir / name
        assert a.is_file() and b.is_file(), f"{name}: missing in {a_dir if not a.is_file() else b_dir}"
        if name.endswith(".safetensors"):
            assert_same_tensors(load_file(str(a)), load_file(str(b)), name)
        else:
            assert a.read_bytes() == b.read_bytes(), f"{name} differs"


def assert_same_values(a: Mapping[str, Any], b: Mapping[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        assert key in a and key in b, f"{key} missing"
        assert a[key] == b[key], f"{key} differs: {a[key]!r} != {b[key]!r}"
