"""Every option of every command, fed bad values: one line starting ``error:`` and exit code 2, or a
valid run (exit 0), never a traceback, and nothing of the user's deleted or overwritten.

The commands and their options are read from the parser the command table builds, so a new
option (or a new search strategy) is fuzzed without a line of new test code. The bad values
come from the option's kind: numbers get negative, zero, NaN, infinite, huge and non-numbers;
texts get empty, odd and non-UTF-8 values and every wrong kind of path (missing, a folder
where a file is expected, a file where a folder is expected, a non-UTF-8 file, a user's
folder, a location that cannot be written). Runs are tiny (tiny backbones, a tiny CSV, 1
step); a valid value that would start a long run is cut after a fixed number of forward
passes, which counts as valid.

Run with ``-s`` to see the totals per command.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import random
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from promptlearning.cli.main import build_parser, main

from .conftest import NEGATIVE, POSITIVE
from .meta_toys import toy_tasks  # noqa: F401  (fixture)

MAX_FORWARDS = 25  # forward passes a valid case may run before it is cut (a base run needs fewer)
LABEL_WORDS = "{neg: [bad], pos: [good]}"
LATIN1 = "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1")


class Capped(BaseException):
    """A valid case that ran past MAX_FORWARDS forward passes: cut, and counted as valid."""


# ---------------------------------------------------------------------------- the world the cases run in
@dataclass
class World:
    """Files and trained artifacts the base invocations use, and fresh paths on demand."""

    root: Path
    counter: Iterator[int] = field(default_factory=itertools.count)

    def fresh(self, name: str = "out") -> str:
        return str(self.root / "fresh" / f"{name}{next(self.counter)}")

    def path(self, name: str) -> str:
        return str(self.root / name)


def _write_csv(path: Path, n_per_class: int = 12) -> None:
    rng = random.Random(5)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(n_per_class):
            writer.writerow([f"{rng.choice(POSITIVE)} {rng.choice(POSITIVE)}", "pos"])
            writer.writerow([f"{rng.choice(NEGATIVE)} {rng.choice(NEGATIVE)}", "neg"])


def _must(argv: list[str]) -> None:
    assert main(argv) == 0, f"setting up the fuzz world: `promptlearning {' '.join(argv)}` failed"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from promptlearning.data import tasks as task_registry
    from promptlearning.data.tasks import TaskSpec

    from .meta_toys import WORDS, toy_data

    mp = pytest.MonkeyPatch()
    for name in WORDS:  # the toy tasks, for the whole module (toy_tasks is function-scoped)
        mp.setitem(task_registry._REGISTRY, name, TaskSpec(name, ("negative", "positive"), f"toy task {name}", "tests",
                                                           lambda n=name: toy_data(n)))
        mp.delitem(task_registry._LOADED, name, raising=False)
    w = World(tmp_path_factory.mktemp("fuzz"))
    root = w.root
    (root / "fresh").mkdir()
    _write_csv(root / "toy.csv")
    (root / "texts.txt").write_text("great movie\nboring plot\n")
    quick = ["--max-steps", "1", "--eval-every", "1", "--quiet", "--no-baseline"]
    _must(["train", "--train-file", str(root / "toy.csv"), "--backbone", "tiny-bert", "--shots", "4", *quick,
           "--output", str(root / "bert")])
    _must(["train", "--train-file", str(root / "toy.csv"), "--backbone", "tiny-llama", "--shots", "4", *quick,
           "--method", "prompt_tuning", "--output", str(root / "llama")])
    _must(["train", "--task", "toy_movies", "--backbone", "tiny-bert", "--shots", "4", *quick,
           "--method", "prompt_tuning", "--option", "num_tokens=3", "--output", str(root / "source")])
    _must(["train", "--tasks", "toy_movies,toy_films", "--backbone", "tiny-bert", "--shots", "4", *quick,
           "--method", "multitask_prompt", "--option", "num_tokens=3", "--output", str(root / "multi")])
    _must(["search", "evolution", "--train-file", str(root / "toy.csv"), "--backbone", "tiny-llama", "--shots", "2",
           "--label-words", LABEL_WORDS, "--quiet", "--no-test", "--max-forward-passes", "40",
           "--output", str(root / "search")])
    (root / "suite.yaml").write_text(
        f"name: fuzz\nbackbone: tiny-bert\ntasks: [{{name: toy, train_file: {root / 'toy.csv'}}}]\nshots: 2\n"
        "seeds: [1]\nmax_test: 4\ntrain: {max_steps: 1, eval_every: 1, eval_batch_size: 8}\nmethods: [linear_probe]\n")
    _must(["bench", str(root / "suite.yaml"), "--store", str(root / "store"), "--quiet"])
    yield w
    mp.undo()


def base_invocations(w: World) -> dict[tuple[str, ...], dict[str, Any]]:
    """A valid, quick invocation of each command: positional dest -> value, and flag -> value (None: a
    switch). A value may be a function of the world (a fresh output path per case)."""
    csv_file = w.path("toy.csv")
    fresh: Callable[[], str] = w.fresh
    quick_search = {"--train-file": csv_file, "--backbone": "tiny-llama", "--shots": "2", "--label-words": LABEL_WORDS,
                    "--quiet": None, "--no-test": None, "--max-forward-passes": "64", "--output": fresh}
    return {
        ("tasks",): {"--no-sizes": None},
        ("backbones",): {},
        ("methods",): {},
        ("train",): {"--train-file": csv_file, "--backbone": "tiny-bert", "--shots": "4", "--max-steps": "1",
                     "--eval-every": "1", "--quiet": None, "--no-baseline": None, "--output": fresh},
        ("evaluate",): {"--adapter": w.path("bert/best"), "--train-file": csv_file, "--shots": "4"},
        ("predict",): {"--adapter": w.path("bert/best"), "texts": ["great movie"]},
        ("generate",): {"--adapter": w.path("llama/best"), "texts": ["great movie"], "--max-new-tokens": "2"},
        ("demo",): {"--output": fresh, "--max-steps": "1", "--quiet": None},
        ("bench",): {"suite": w.path("suite.yaml"), "--store": fresh, "--quiet": None, "--no-report": None},
        ("report",): {"suite_dir": lambda: _copy_store(w)},
        ("tune",): {"--method": "prefix_tuning", "--train-file": csv_file, "--backbone": "tiny-bert", "--shots": "2",
                    "--max-steps": "1", "--eval-every": "1", "--n-trials": "1", "--output": fresh},
        ("inspect",): {"adapter": w.path("bert/best"), "--file": w.path("texts.txt")},
        ("continual",): {"tasks": "toy_movies,toy_films", "--backbone": "tiny-bert", "--shots": "2", "--steps": "1",
                         "--max-test": "4", "--no-scratch": None, "--output": fresh},
        ("transfer",): {"--target": "toy_films", "--source": w.path("source/best"), "--shots": "2", "--steps": "1",
                        "--max-test": "4", "--no-scratch": None, "--output": fresh},
        ("adapt",): {"--from": w.path("multi/best"), "--task": "toy_phones", "--shots": "2", "--steps": "1",
                     "--max-test": "4", "--quiet": None},
        ("export",): {"--adapter": w.path("source/best"), "--to": "peft", "--output": fresh},
        ("serve",): {"--backbone": "tiny-bert", "--adapter": f"a={w.path('bert/best')}"},  # uvicorn.run is a no-op
        ("search", "strategies"): {},
        ("search", "hybrid"): {"--from": w.path("search"), "--max-steps": "1", "--eval-every": "1", "--quiet": None,
                               "--no-baseline": None, "--output": fresh},
        ("search", "*"): quick_search,  # every registered search strategy
    }


def _copy_store(w: World) -> str:
    import shutil

    target = w.fresh("store")
    shutil.copytree(w.path("store"), target)
    return target


# ---------------------------------------------------------------------------- commands and their options
def leaf_parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every runnable command (``search evolution`` is a path of two names) and its parser."""
    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if path:
            out[path] = parser
        for sub in subs:
            for name, child in sub.choices.items():
                walk(child, (*path, name))

    walk(build_parser(), ())
    return {path: p for path, p in out.items() if path != ("search",)}


def base_for(path: tuple[str, ...], w: World) -> dict[str, Any]:
    bases = base_invocations(w)
    if path in bases:
        return bases[path]
    if path[0] == "search":
        return bases[("search", "*")]
    raise AssertionError(f"command {' '.join(path)} has no quick base invocation in base_invocations(): add one")


@dataclass(frozen=True)
class Option:
    """One option of a command, as the fuzzer sees it."""

    name: str  # the flag, or the positional's dest
    kind: str  # int, float, choice, text, texts (nargs + / *), switch
    positional: bool = False
    choices: tuple[str, ...] = ()


def options_of(parser: argparse.ArgumentParser) -> list[Option]:
    out = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        if action.help == argparse.SUPPRESS:  # deprecated spellings: the new flag is fuzzed
            continue
        positional = not action.option_strings
        name = action.dest if positional else max(action.option_strings, key=len)
        if action.nargs == 0:
            kind = "switch"
        elif action.choices is not None:
            kind = "choice"
        elif action.type is int:
            kind = "int"
        elif action.type is float:
            kind = "float"
        elif action.nargs in ("+", "*"):
            kind = "texts"
        else:
            kind = "text"
        out.append(Option(name, kind, positional, tuple(str(c) for c in action.choices or ())))
    return out


# ---------------------------------------------------------------------------- bad values by kind
# options that name a file or folder get every wrong kind of path; the others a few, and odd texts
PATHLIKE = re.compile(r"file|config|output|store|adapter|from|source|library|suite|dir|path")
NUMBERS = ["-1", "0", "nan", "inf", "-inf", "1e400", "99999999999999999999", "abc", "", "1.5", "0x10"]


def bad_values(option: Option, w: World) -> list[Any]:
    """The values tried for ``option``: each is text, or a function of the world that prepares and returns one."""
    if option.kind == "switch":
        return []
    if option.kind in ("int", "float"):
        return list(NUMBERS)
    if option.kind == "choice":
        return ["nope", "", option.choices[0].upper() if option.choices else "X"]
    texts: list[Any] = ["", "caf\udce9"]  # \udce9: a byte of a non-UTF-8 argument
    if not PATHLIKE.search(option.name):
        texts += ["   ", "nope", "{", "x" * 300, "../outside"]
    paths = [
        lambda: w.fresh("missing") + "/nothing",                             # a missing path
        lambda: _user_folder(w),                                             # a folder of the user's (a file expected)
        lambda: _user_file(w, b"a user's notes\n"),                          # a file (a folder expected)
    ]
    if PATHLIKE.search(option.name):
        paths += [
            lambda: _user_file(w, LATIN1),                                   # a non-UTF-8 file
            lambda: _user_file(w, b"\x00\xff\xfe binary \x00"),              # binary bytes
            lambda: _user_file(w, b""),                                      # an empty file
            lambda: _user_file(w, b"x") + "/under",                          # a path below a file
            lambda: "/proc/promptlearning-fuzz/out",                         # a location that cannot be written
            lambda: _empty_folder(w),                                        # an empty folder
        ]
    values = texts + paths
    return [[v] if option.kind == "texts" and isinstance(v, str) else v for v in values]


def _user_folder(w: World) -> str:
    folder = Path(w.fresh("user"))
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("the user's own notes\n")
    return str(folder)


def _user_file(w: World, content: bytes) -> str:
    path = Path(w.fresh("user") + ".txt")
    path.write_bytes(content)
    return str(path)


def _empty_folder(w: World) -> str:
    folder = Path(w.fresh("empty"))
    folder.mkdir(parents=True)
    return str(folder)


def _users_things(root: Path) -> dict[Path, bytes]:
    """Every file the fuzzer made as the user's (under fresh/user*): they must survive every case."""
    out = {}
    for path in (root / "fresh").glob("user*"):
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
        out.update({f: f.read_bytes() for f in files})
    return out


# ---------------------------------------------------------------------------- running one case
def argv_for(path: tuple[str, ...], parser: argparse.ArgumentParser, base: dict[str, Any],
             replace: tuple[str, Any] | None) -> list[str]:
    values = dict(base)
    if replace is not None:
        values[replace[0]] = replace[1]
    positionals = [a.dest for a in parser._actions if not a.option_strings and a.dest in values]
    argv = list(path)
    for dest in positionals:
        value = values.pop(dest)
        value = value() if callable(value) else value
        argv += list(value) if isinstance(value, list) else [value]
    for flag, value in values.items():
        value = value() if callable(value) else value
        argv += [flag] if value is None else [flag, *(value if isinstance(value, list) else [value])]
    return argv


@dataclass
class Outcome:
    code: int | None
    err: str
    leaked: str = ""  # the exception that escaped main(), with its traceback
    capped: bool = False


def run_case(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Outcome:
    from promptlearning.model import PromptModel

    calls = [0]
    forward = PromptModel.forward

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > MAX_FORWARDS:
            raise Capped
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(PromptModel, "forward", counted)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code: int | None = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Capped:
        return Outcome(0, err.getvalue(), capped=True)
    except BaseException as exc:  # noqa: BLE001 - any escape is the finding
        return Outcome(None, err.getvalue(), leaked=_short(traceback.format_exception(exc)))
    finally:
        monkeypatch.setattr(PromptModel, "forward", forward)
    return Outcome(code, err.getvalue())


def _short(lines: list[str]) -> str:
    """The innermost frame and the exception line of a traceback: enough to find the leak."""
    text = "".join(lines).strip().splitlines()
    frames = [ln.strip() for ln in text if ln.strip().startswith("File ")]
    return f"{text[-1]} ({frames[-1] if frames else 'no frame'})"


def verdict(outcome: Outcome) -> str | None:
    """None when the case was handled well, else what went wrong."""
    if outcome.leaked:
        return f"raised out of main():\n{outcome.leaked}"
    if "Traceback" in outcome.err:
        return f"printed a traceback: {_short(outcome.err.splitlines(keepends=True))}"
    if outcome.code == 0:
        return None
    if outcome.code != 2:
        return f"exit code {outcome.code} (expected 0 or 2); stderr: {outcome.err[-500:]!r}"
    lines = [ln for ln in outcome.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if len(errors) != 1 or lines[-1] != errors[0]:
        return f"expected one last stderr line starting 'error:'; got {lines[-5:]!r}"
    return None


@dataclass
class Tally:
    cases: int = 0
    clean_errors: int = 0
    valid: int = 0
    capped: int = 0
    tracebacks: int = 0
    other: int = 0


TOTALS: dict[str, Tally] = {}
COMMANDS = sorted(leaf_parsers())


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_bad_value_of_every_option_is_one_line_or_valid(path: tuple[str, ...], world: World,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_demo(monkeypatch, world)
    _no_server(monkeypatch)
    cwd = world.root / "cwd"  # relative paths among the values land here, never in the repository
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    parser = leaf_parsers()[path]
    base = base_for(path, world)
    first = run_case(argv_for(path, parser, base, None), monkeypatch)
    assert first.code == 0 and not first.leaked, f"the base invocation of {' '.join(path)} failed: " \
                                                 f"{first.leaked or first.err[-800:]}"
    tally = TOTALS.setdefault(" ".join(path), Tally())
    problems = []
    for option in options_of(parser):
        for value in bad_values(option, world):
            argv = argv_for(path, parser, base, (option.name, value))
            before = _users_things(world.root)
            outcome = run_case(argv, monkeypatch)
            tally.cases += 1
            problem = verdict(outcome)
            lost = [str(f) for f, data in before.items() if not f.is_file() or f.read_bytes() != data]
            if lost:
                problem = (problem or "") + f" deleted or changed the user's {lost}"
            if problem is None:
                if outcome.code == 2:
                    tally.clean_errors += 1
                else:
                    tally.valid += 1
                    tally.capped += outcome.capped
                continue
            if outcome.leaked or "Traceback" in outcome.err:
                tally.tracebacks += 1
            else:
                tally.other += 1
            problems.append(f"`promptlearning {' '.join(argv)}`: {problem}"[-700:])
    print(f"\nfuzz {' '.join(path)}: {tally}")
    assert not problems, f"{len(problems)} of {tally.cases} cases mishandled:\n" + "\n".join(problems[:40])


def _no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` builds its server (every check, every adapter loaded), then would listen for ever: not here."""
    try:
        import uvicorn
    except ImportError:
        return
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)


def _tiny_demo(monkeypatch: pytest.MonkeyPatch, w: World) -> None:
    """`demo` trains MiniLM on MR; here it runs the same steps on the tiny backbone and the toy CSV."""
    import dataclasses

    from promptlearning.runs import demo
    from promptlearning.runs.single_task import DataConfig

    real = demo.ExperimentConfig

    def tiny(*args: Any, **kwargs: Any) -> Any:
        cfg = real(*args, **kwargs)
        data = DataConfig(task=None, train_file=w.path("toy.csv"), shots=4)
        return dataclasses.replace(cfg, backbone="tiny-bert", data=data)

    monkeypatch.setattr(demo, "ExperimentConfig", tiny)
