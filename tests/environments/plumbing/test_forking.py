"""A function run in a forked child answers to its parent as a spawned process does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from environments.plumbing import processes
from environments.plumbing.forking import fork_call
from tests.waiting import wait_until


def run(main, tmp_path: Path, **options):
    with open(tmp_path / "out.log", "ab") as output:
        return fork_call(main, output=output, **options)


def test_the_exit_status_is_what_main_returns_or_raises(tmp_path: Path) -> None:
    assert run(lambda: 7, tmp_path).wait(timeout=10) == 7
    assert run(lambda: None, tmp_path).wait(timeout=10) == 0
    assert run(lambda: sys.exit(4), tmp_path).wait(timeout=10) == 4

    def broken() -> int:
        raise ValueError("a message for the log")

    assert run(broken, tmp_path).wait(timeout=10) == 1
    assert "ValueError: a message for the log" in (tmp_path / "out.log").read_text()


def test_output_environment_session_and_stdin_are_the_childs_own(tmp_path: Path) -> None:
    def child() -> int:
        print("printed", os.environ["FORKING_PROBE"], sys.stdin.read() == "", flush=True)
        print("warned", file=sys.stderr, flush=True)
        return 0 if os.getsid(0) == os.getpid() else 9

    call = run(child, tmp_path, env={"FORKING_PROBE": "set"})
    assert call.wait(timeout=10) == 0
    assert (tmp_path / "out.log").read_text().splitlines() == ["printed set True", "warned"]
    assert "FORKING_PROBE" not in os.environ


def test_poll_and_a_wait_that_runs_out_of_time(tmp_path: Path) -> None:
    call = run(lambda: time.sleep(30), tmp_path)
    try:
        assert call.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            call.wait(timeout=0.2)
    finally:
        os.kill(call.pid, signal.SIGKILL)
    assert call.wait(timeout=10) == -signal.SIGKILL
    assert call.poll() == -signal.SIGKILL  # and it stays reaped


def test_kill_group_stops_the_child_and_what_it_started(tmp_path: Path) -> None:
    def starts_a_grandchild() -> int:
        grandchild = subprocess.Popen(["sleep", "60"])
        (tmp_path / "grandchild").write_text(str(grandchild.pid))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so the grace runs out: SIGKILL
        time.sleep(60)
        return 0

    call = run(starts_a_grandchild, tmp_path)
    grandchild = int(
        wait_until(
            lambda: (tmp_path / "grandchild").exists() and (tmp_path / "grandchild").read_text(),
            timeout=10,
            message="the grandchild to start",
        )
    )
    processes.kill_group(call, grace=0.5)
    assert call.returncode == -signal.SIGKILL
    wait_until(
        lambda: not _alive(grandchild), timeout=10, message="the grandchild to be killed too"
    )


PARENT = """
import sys, time
from environments.plumbing.forking import fork_call

with open(sys.argv[1], "ab") as output:
    call = fork_call(lambda: time.sleep(120), output=output)
print(call.pid, flush=True)
time.sleep(120)
"""


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PARENT), str(tmp_path / "out.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    wait_until(lambda: not _alive(child), timeout=10, message="the orphan to get SIGTERM")


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
