"""The forward-pass budget, the evaluation journal and exact resume by replay.

Every evaluation a search makes goes through :meth:`SearchBudget.evaluate` with a key
naming the candidate (its template, or a hash of its vector). A new evaluation is appended
to ``journal.jsonl`` (one line, flushed) before the search moves on. Searches are
deterministic given their seed, so resuming a killed search re-runs it from the start while
the journal answers the evaluations already made, in order, without a forward pass: the
search arrives exactly where it stopped, with its RNGs, optimiser states and CMA-ES
distribution as they were, and nothing is pickled. A journal entry that does not match the
candidate asked for means the settings changed, and the resume is refused.

A replayed evaluation is paid for like a new one: it must be affordable under the current
budget, so a resume with a smaller budget stops exactly where a fresh run with that budget
stops, and :meth:`SearchBudget.finish` then drops the journal's entries past that point (the
run directory describes the run that was made). The journal's format is the same as before
this rule, so journals of earlier runs resume.

A candidate asked for again (an elite, a repeated sample) is answered from memory for free.
The progress bar counts forward passes and shows the best score so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from promptlearning.errors import TrainingError
from promptlearning.fileio import write_text_atomic
from promptlearning.search.scoring import Score

JOURNAL_FILE = "journal.jsonl"
#: what every journal line holds, then and now: the candidate's key and its score
ENTRY_FIELDS = frozenset({"key", "fitness", "accuracy", "margin", "forwards"})


class BudgetExhausted(Exception):
    """Raised when the next evaluation would exceed the budget: the search stops there."""


#: consecutive candidates answered from memory after which a search counts as converged
MAX_REPEATS = 200


class SearchBudget:
    def __init__(self, limit: int, *, estimate: int, directory: Path | None = None, resume: bool = False,
                 quiet: bool = False, desc: str = "search", max_repeats: int = 0) -> None:
        self.limit = limit
        # a search whose every new candidate was already scored spends nothing, so without this stop a
        # collapsed policy (or a population of clones) bounded only by the budget would loop for ever;
        # 0 turns it off (a search bounded by steps or generations ends anyway)
        self.max_repeats = max_repeats
        self.repeats = 0
        self.converged = False
        self.estimate = estimate  # forward passes one evaluation is expected to take
        self.used = 0
        self.evaluations = 0
        self.memo: dict[str, Score] = {}
        self.order: list[str] = []  # keys in the order first evaluated
        self.best_key: str | None = None
        self.curve: list[dict[str, Any]] = []
        self._replay: list[dict[str, Any]] = []  # the journal being replayed, in order
        self._next = 0  # index of the next entry of _replay to answer
        self._path = directory / JOURNAL_FILE if directory is not None else None
        if self._path is not None:
            directory.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            if resume:
                self._replay = _read_journal(self._path)
                write_text_atomic(self._path, _lines(self._replay))  # without a line cut short by a kill
            else:
                self._path.write_text("")
        self.replayed = len(self._replay)  # entries the journal held when resumed
        self._bar = tqdm(total=limit, disable=quiet, desc=desc, unit="fwd", dynamic_ncols=True)

    # ------------------------------------------------------------------ queries
    @property
    def best(self) -> Score | None:
        return self.memo[self.best_key] if self.best_key is not None else None

    def remaining(self) -> int:
        return self.limit - self.used

    def affordable(self, evaluations: int = 1) -> bool:
        return self.used + evaluations * self.estimate <= self.limit

    def top(self, k: int) -> list[tuple[str, Score]]:
        """The k best keys by fitness (ties: the first found)."""
        ranked = sorted(self.order, key=lambda key: -self.memo[key].fitness)
        return [(key, self.memo[key]) for key in ranked[:k]]

    # ------------------------------------------------------------------ spending
    def charge(self, forwards: int) -> None:
        """Count forward passes made outside scoring (e.g. a policy's context state)."""
        self.used += forwards
        self._bar.update(forwards)

    def evaluate(self, key: str, run: Callable[[], Score]) -> Score:
        """The candidate's score: from memory, from the journal when resuming, or by running it."""
        if key in self.memo:
            self.repeats += 1
            if self.max_repeats and self.repeats >= self.max_repeats:
                self.converged = True
                raise BudgetExhausted
            return self.memo[key]
        self.repeats = 0
        # checked before a replayed evaluation too: a resume stops where a fresh run with this budget stops
        if not self.affordable():
            raise BudgetExhausted
        if self._next < len(self._replay):
            entry = self._replay[self._next]
            self._next += 1
            if entry["key"] != key:
                raise TrainingError("the search journal does not match this search (settings or code changed); "
                                    "resume with the same options or choose a new --output")
            score = Score(**{k: entry[k] for k in ENTRY_FIELDS - {"key"}})
        else:
            score = run()
            if self._path is not None:
                with self._path.open("a") as fh:
                    fh.write(json.dumps({"key": key, **score.to_dict()}) + "\n")
        self.memo[key] = score
        self.order.append(key)
        self.used += score.forwards
        self.evaluations += 1
        if self.best is None or score.fitness > self.best.fitness:
            self.best_key = key
        best = self.best
        assert best is not None
        self.curve.append({"forwards": self.used, "best_fitness": best.fitness, "best_accuracy": best.accuracy})
        self._bar.update(score.forwards)
        self._bar.set_postfix(best_acc=f"{best.accuracy:.3f}", best_fit=f"{best.fitness:.3f}")
        return score

    def finish(self) -> int:
        """After a search that ended by itself (not killed): drop the journal's entries it did not
        replay, which lie past this run's budget, so the journal holds exactly this run's
        evaluations. Returns how many were dropped."""
        left = len(self._replay) - self._next
        if left and self._path is not None:
            write_text_atomic(self._path, _lines(self._replay[:self._next]))
        return left

    def close(self) -> None:
        self._bar.close()


def _lines(entries: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in entries)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TrainingError(f"--resume given but {path.parent} holds no search journal; drop --resume to start afresh, or add --overwrite if it holds an earlier search")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by the kill: everything before it stands
        if not isinstance(entry, dict) or not entry.keys() >= ENTRY_FIELDS:
            raise TrainingError(f"line {number} of {path} is not a search evaluation this version can replay; "
                                "start afresh with --overwrite in place of --resume, or choose a new --output")
        entries.append(entry)
    return entries
