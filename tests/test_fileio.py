"""Crash-safe saves: killed at any instant the previous copy survives; a user's folder is never replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from promptlearning.errors import ConfigError
from promptlearning.fileio import atomic_directory, recover_directory


def _save(target: Path, version: str) -> None:
    with atomic_directory(target, marker_files=("marker.json",)) as tmp:
        (tmp / "marker.json").write_text(version)
        (tmp / "payload.bin").write_bytes(version.encode() * 1000)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_kill_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    target = tmp_path / "best"
    _save(target, "v1")
    # the state a kill between `target -> .best.old-PID` and `tmp -> target` leaves behind
    os.replace(target, tmp_path / f".best.old-{_dead_pid()}")
    (tmp_path / f".best.tmp-{_dead_pid()}-abc").mkdir()
    assert not target.exists()
    recover_directory(target)
    assert (target / "marker.json").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # leftovers of dead processes are gone


def test_the_next_save_recovers_and_then_replaces(tmp_path: Path) -> None:
    target = tmp_path / "best"
    _save(target, "v1")
    os.replace(target, tmp_path / f".best.old-{_dead_pid()}")
    _save(target, "v2")
    assert (target / "marker.json").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_live_process_old_copy_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "best"
    _save(target, "v1")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        old = tmp_path / f".best.old-{sleeper.pid}"
        os.replace(target, old)
        recover_directory(target)  # the live process may be between its renames right now
        assert old.is_dir() and not target.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    recover_directory(target)
    assert (target / "marker.json").read_text() == "v1"


def test_a_folder_of_the_users_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="did not write"):
        _save(target, "v1")
    assert (target / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_file_in_the_way_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(ConfigError, match="not a folder"):
        _save(target, "v1")
    assert target.read_text() == "a file"
    with pytest.raises(ConfigError, match="file is in the way"):
        _save(target / "sub", "v1")


def test_an_empty_folder_and_an_earlier_save_are_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    _save(target, "v1")
    _save(target, "v2")
    assert (target / "marker.json").read_text() == "v2"


def test_saved_files_get_the_modes_a_plain_write_would(tmp_path: Path) -> None:
    """mkdtemp/mkstemp make private files; a saved adapter must be readable by whoever could read a plain file
    (another user serving it), as its config always was."""
    from promptlearning.fileio import write_text_atomic

    old = os.umask(0o022)
    try:
        target = tmp_path / "adapter"
        with atomic_directory(target) as tmp:
            (tmp / "weights.bin").write_bytes(b"x")
            fd = os.open(tmp / "private.bin", os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors' writer may
            os.close(fd)
        write_text_atomic(tmp_path / "index.json", "{}")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (target, target / "weights.bin", target / "private.bin",
                                                        tmp_path / "index.json")}
    assert modes == {"adapter": 0o755, "weights.bin": 0o644, "private.bin": 0o644, "index.json": 0o644}


def test_killed_at_random_instants_a_complete_copy_always_survives(tmp_path: Path) -> None:
    """SIGKILL a process that saves in a loop; after each kill the folder (recovered) is whole."""
    target = tmp_path / "best"
    script = textwrap.dedent(f"""
        import itertools, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "src")!r})
        from pathlib import Path
        from promptlearning.fileio import atomic_directory
        target = Path({str(target)!r})
        for i in itertools.count():
            with atomic_directory(target, marker_files=("marker.json",)) as tmp:
                (tmp / "payload.bin").write_bytes(str(i).encode() * 5000)
                (tmp / "marker.json").write_text(str(i))
            if i == 0:
                print("ready", flush=True)
    """)
    for delay in (0.0, 0.003, 0.007, 0.011, 0.02, 0.031, 0.05):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recover_directory(target)
        version = (target / "marker.json").read_text()
        assert (target / "payload.bin").read_bytes() == version.encode() * 5000
