"""The results store: one SQLite file per suite directory, one row per job.

Why SQLite: it is one file, it ships with Python, and ``BEGIN IMMEDIATE`` gives the
atomic claim that lets several worker processes share a sweep without ever running the
same job twice. A row is keyed by the hash of the job's full configuration, so a re-run
skips finished jobs and a killed sweep resumes. Status moves
``pending -> running -> done | failed``; a ``running`` row whose owner died (its process
is gone on this host, or its heartbeat is older than ``stale_after`` seconds) may be
claimed again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptlearning.bench.jobs import with_legacy_lr
from promptlearning.bench.suite import Job, canonical_json, job_key
from promptlearning.errors import ConfigError

STORE_FILE = "results.sqlite"
STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    label TEXT NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    shots INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    backbone TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    owner TEXT,
    claimed_at REAL,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    traceback TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def store_path(location: str | Path) -> Path:
    """The SQLite file of a suite directory (or the file itself when given)."""
    location = Path(location)
    return location if location.suffix in (".sqlite", ".db") else location / STORE_FILE


def new_owner() -> str:
    """``host:pid:token`` — the host and pid let a dead owner be recognised on this machine."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str | None) -> bool:
    """True when the owner ran on this host and its process is gone."""
    if not owner:
        return True
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _seed(config: dict[str, Any]) -> int:
    """A job's seed column: -1 for a job that draws nothing at random (a fixed prompt has none)."""
    seed = config["train"].get("seed")
    return -1 if seed is None else int(seed)


def extends(old: Any, new: Any, defaults: Any) -> bool:
    """True when ``new`` is ``old`` plus keys (at any depth) that hold their default values."""
    if isinstance(old, dict) and isinstance(new, dict):
        defaults = defaults if isinstance(defaults, dict) else {}
        extra = set(new) - set(old)
        if set(old) - set(new) or any(k not in defaults or defaults[k] != new[k] for k in extra):
            return False
        return all(extends(v, new[k], defaults.get(k)) for k, v in old.items())
    return bool(old == new)


def takes_over(job: Job, old: dict[str, Any]) -> bool:
    """True when ``job`` is the job a row stored with config ``old`` ran, under the key it had before the code
    gained a field (at its default) or before jobs carried their learning rate."""
    return extends(old, job.config, job.defaults) or extends(with_legacy_lr(old), job.config, job.defaults)


def row_identity(task: str, config: dict[str, Any]) -> tuple[Any, ...]:
    """The columns a row must share with a job it could belong to: the index :func:`takes_over` is tried within."""
    return task, config["method"], config["data"]["shots"], _seed(config), config["backbone"]


class ResultStore:
    """Jobs and their results in one SQLite file; safe to share between processes."""

    def __init__(self, path: str | Path, *, stale_after: float = 900.0, max_attempts: int = 3,
                 create: bool = True) -> None:
        self.path = store_path(path)
        self.stale_after = stale_after
        self.max_attempts = max_attempts
        if not self.path.is_file():
            if not create:
                raise ConfigError(f"no results store at {self.path}; run `promptlearning bench SUITE.yaml "
                                  f"--store {self.path.parent}` first")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a results store ({exc}); point --store at another directory") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so claims are atomic."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ jobs
    def add_jobs(self, jobs: Iterable[Job], suite: str) -> int:
        """Insert jobs not yet known (labels of known ones are refreshed); returns how many are new.

        A job whose config only *adds* fields to a stored row's config (the code gained an
        option since, at its default) takes over that row instead of running again, so a
        long sweep survives a new field; any changed value is a new job. A row keyed before jobs
        carried their learning rate (``lr: null``) counts as trained at the rate frozen for its
        method in :data:`~promptlearning.bench.jobs.LEGACY_DEFAULT_LR`, so it is taken over while
        the job's rate (the method's current default, when the suite sets none) is that one.
        """
        now, added = time.time(), 0
        with self._write() as db:
            for job in jobs:
                c = job.config
                self._adopt(db, job)
                cur = db.execute(
                    "INSERT OR IGNORE INTO runs (key, suite, label, task, method, shots, seed, backbone, config, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.key, suite, job.label, job.task, c["method"], c["data"]["shots"], _seed(c),
                     c["backbone"], canonical_json(c), now))
                if cur.rowcount:
                    added += 1
                else:
                    db.execute("UPDATE runs SET label = ? WHERE key = ?", (job.label, job.key))
        return added

    @staticmethod
    def _adoptable(db: sqlite3.Connection, job: Job) -> str | None:
        """The key of a stored row (under another key) that ``job`` takes over, if any."""
        if db.execute("SELECT 1 FROM runs WHERE key = ?", (job.key,)).fetchone():
            return None
        c = job.config
        for row in db.execute("SELECT key, config FROM runs WHERE task = ? AND method = ? AND shots = ? AND seed = ? "
                              "AND backbone = ?", (job.task, c["method"], c["data"]["shots"], _seed(c),
                                                   c["backbone"])).fetchall():
            if takes_over(job, json.loads(row["config"])):
                return str(row["key"])
        return None

    @classmethod
    def _adopt(cls, db: sqlite3.Connection, job: Job) -> None:
        key = cls._adoptable(db, job)
        if key is not None:
            db.execute("UPDATE runs SET key = ?, config = ? WHERE key = ?", (job.key, canonical_json(job.config), key))

    def claim(self, owner: str, keys: Iterable[str] | None = None) -> Job | None:
        """Atomically take the oldest pending job (or a stale running one); None when none is left."""
        wanted = set(keys) if keys is not None else None
        now = time.time()
        with self._write() as db:
            rows = db.execute("SELECT key, label, config, status, owner, heartbeat, attempts FROM runs "
                              "WHERE status IN ('pending', 'running') ORDER BY created_at, rowid").fetchall()
            for row in rows:
                if wanted is not None and row["key"] not in wanted:
                    continue
                if row["status"] == "running" and not self._stale(row, now):
                    continue
                if row["attempts"] >= self.max_attempts:  # its worker died every time (out of memory?)
                    db.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE key = ?",
                               (f"Abandoned: the process running it died {row['attempts']} times "
                                "(out of memory?); rerun with --retry-failed", now, row["key"]))
                    continue
                db.execute("UPDATE runs SET status = 'running', owner = ?, claimed_at = ?, heartbeat = ?, "
                           "attempts = attempts + 1 WHERE key = ?", (owner, now, now, row["key"]))
                return Job(row["key"], row["label"], json.loads(row["config"]))
        return None

    def _stale(self, row: sqlite3.Row, now: float) -> bool:
        return _owner_dead(row["owner"]) or (row["heartbeat"] or 0.0) < now - self.stale_after

    def heartbeat(self, key: str, owner: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET heartbeat = ? WHERE key = ? AND owner = ? AND status = 'running'",
                       (time.time(), key, owner))

    def finish(self, key: str, owner: str, result: dict[str, Any]) -> None:
        """Record a finished job (even if it was re-claimed meanwhile: a result is never thrown away)."""
        with self._write() as db:
            db.execute("UPDATE runs SET status = 'done', owner = ?, result = ?, error = NULL, traceback = NULL, "
                       "finished_at = ? WHERE key = ?", (owner, json.dumps(result), time.time(), key))
        self.checkpoint()

    def record_done(self, suite: str, label: str, task: str, method: str, shots: int, seed: int | None,
                    backbone: str, config: dict[str, Any], result: dict[str, Any]) -> str:
        """Record a result computed outside the bench (rows kept from before their job kind existed); returns its key.

        The row is keyed like a suite job, by the hash of ``config``, and written as ``done``:
        recording the same config again updates that row's result (and names) instead of adding
        one, so an import can be repeated. ``seed`` None (a run that draws nothing at random,
        such as a fixed prompt) is stored as -1. No suite lists these keys, so ``bench`` never
        claims or counts them.
        """
        key, now = job_key(config), time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (key, suite, label, task, method, shots, seed, backbone, config, status, result, "
                "created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'done', ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET suite = excluded.suite, label = excluded.label, status = 'done', "
                "result = excluded.result, error = NULL, traceback = NULL, finished_at = excluded.finished_at",
                (key, suite, label, task, method, int(shots), -1 if seed is None else int(seed), backbone,
                 canonical_json(config), json.dumps(result), now, now))
        self.checkpoint()
        return key

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the main file, so ``results.sqlite`` alone holds every
        finished row (what gets published or committed mid-sweep)."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def fail(self, key: str, owner: str, error: str, traceback: str = "") -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status = 'failed', owner = ?, error = ?, traceback = ?, finished_at = ? "
                       "WHERE key = ? AND status != 'done'", (owner, error, traceback, time.time(), key))

    def release(self, key: str, owner: str) -> None:
        """Put a job this owner holds back to pending (Ctrl-C, a worker stopping)."""
        with self._write() as db:
            db.execute("UPDATE runs SET status = 'pending', owner = NULL, claimed_at = NULL, heartbeat = NULL, "
                       "attempts = max(0, attempts - 1) WHERE key = ? AND owner = ? AND status = 'running'",
                       (key, owner))

    def release_owner_prefix(self, prefix: str, interrupted: bool = False) -> int:
        """Put back every running job of owners starting with ``prefix``.

        ``interrupted``: a clean stop (Ctrl-C), which does not count as a failed attempt; a
        worker that was killed does count."""
        with self._write() as db:
            cur = db.execute("UPDATE runs SET status = 'pending', owner = NULL, attempts = attempts - ? "
                             "WHERE status = 'running' AND substr(owner, 1, ?) = ?",
                             (int(interrupted), len(prefix), prefix))
            return cur.rowcount

    def retry_failed(self, keys: Iterable[str] | None = None) -> int:
        """Failed jobs back to pending (``--retry-failed``)."""
        wanted = None if keys is None else list(keys)
        with self._write() as db:
            if wanted is None:
                return db.execute("UPDATE runs SET status = 'pending', error = NULL, attempts = 0 "
                                  "WHERE status = 'failed'").rowcount
            n = 0
            for key in wanted:
                n += db.execute("UPDATE runs SET status = 'pending', error = NULL, attempts = 0 "
                                "WHERE status = 'failed' AND key = ?",
                                (key,)).rowcount
            return n

    # ------------------------------------------------------------------ reading
    def counts(self, keys: Iterable[str] | None = None) -> dict[str, int]:
        wanted = None if keys is None else set(keys)
        out = dict.fromkeys(STATUSES, 0)
        for row in self._db.execute("SELECT key, status FROM runs"):
            if wanted is None or row["key"] in wanted:
                out[row["status"]] += 1
        return out

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row (or those with one status) with config and result decoded."""
        query = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY created_at, rowid"
        out = []
        for row in self._db.execute(query, (status,) if status else ()):
            item = dict(row)
            item["config"] = json.loads(item["config"])
            item["result"] = json.loads(item["result"]) if item["result"] else None
            out.append(item)
        return out

    def status_of(self, key: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["status"])

    def status_of_job(self, job: Job) -> str | None:
        """The status ``job`` would have after :meth:`add_jobs` (its own row's, or that of the row it would
        take over), without writing anything: what ``bench --dry-run`` shows."""
        return self.status_of(self._adoptable(self._db, job) or job.key)

    # ------------------------------------------------------------------ metadata
    def set_meta(self, key: str, value: Any) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def add_to_meta_list(self, key: str, value: Any) -> None:
        """Append to a JSON list in meta unless already there (the commands that built this store)."""
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            items = json.loads(row["value"]) if row else []
            if value not in items:
                items.append(value)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(items)))

    def meta(self) -> dict[str, Any]:
        return {row["key"]: json.loads(row["value"]) for row in self._db.execute("SELECT key, value FROM meta")}
