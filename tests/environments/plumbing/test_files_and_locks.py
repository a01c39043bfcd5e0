"""Atomic writes, one-time creation, file locks and change signatures, on a real filesystem."""

from __future__ import annotations

import multiprocessing
import os
import stat
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from environments.plumbing.files import atomic_output, atomic_write, create_once, is_temporary
from environments.plumbing.locks import FileLock, LockTimeout
from environments.plumbing.watching import FileWatch, signature


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_is_private_unless_told_otherwise(tmp_path: Path) -> None:
    atomic_write(tmp_path / "deep" / "secret.json", "{}")
    atomic_write(tmp_path / "shared.txt", b"x", mode=0o644)
    assert (tmp_path / "deep" / "secret.json").read_text() == "{}"
    assert mode_of(tmp_path / "deep" / "secret.json") == 0o600
    assert mode_of(tmp_path / "shared.txt") == 0o644
    assert sorted(os.listdir(tmp_path)) == ["deep", "shared.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write(b"half of the new")
        (temporary,) = [name for name in os.listdir(tmp_path) if is_temporary(name)]
        assert temporary.endswith(".tmp")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_replaced_file_is_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "config"
    atomic_write(target, "same")
    watch = FileWatch()
    watch.note(target)
    before = signature(target)
    assert not watch.changed()
    atomic_write(target, "same")  # same size, maybe the same mtime: the inode tells
    assert signature(target) != before
    assert watch.changed()
    target.unlink()
    assert signature(target) is None


def test_create_once_keeps_the_first_content(tmp_path: Path) -> None:
    target = tmp_path / "key"
    assert create_once(target, b"first")
    assert not create_once(target, b"second")
    assert target.read_bytes() == b"first"
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == ["key"]


def _hold(path: Path, ready: Event, done: Event) -> None:
    with FileLock(path):
        ready.set()
        done.wait(30)


def test_a_lock_held_elsewhere_is_waited_for_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "the.lock"
    context = multiprocessing.get_context("spawn")
    ready, done = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(path, ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        assert not FileLock(path).try_acquire()
        with pytest.raises(LockTimeout):
            FileLock(path, timeout=0.3).acquire()
        done.set()
        holder.join(30)
        # The holder is gone, so its lock is too.
        with FileLock(path, timeout=5) as lock:
            assert lock.held
        assert not lock.held
    finally:
        done.set()
        holder.join(30)
    assert mode_of(path) == 0o600
