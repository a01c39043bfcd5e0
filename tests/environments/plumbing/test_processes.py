"""Process groups: a spawned command and everything it starts go down together."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from environments.plumbing.processes import kill_group, run, spawn
from tests.waiting import wait_until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has finished all the same.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def written_pid(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text.endswith("\n") else None


def test_kill_group_stops_the_children_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    process = spawn(["bash", "-c", f"sleep 300 & echo $! > {pid_file}; wait"])
    child = wait_until(lambda: written_pid(pid_file), timeout=10, message="the child's pid")
    assert os.getpgid(child) == process.pid
    kill_group(process, grace=5)
    assert process.returncode is not None
    wait_until(lambda: not alive(child), timeout=10, message="the background child to end")


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = f"trap '' TERM; touch {ready}; sleep 300"
    process = spawn(["bash", "-c", script], stdout=subprocess.DEVNULL)
    wait_until(ready.exists, timeout=10, message="the trap to be set")
    started = time.monotonic()
    kill_group(process, grace=0.5)
    assert process.returncode is not None
    assert time.monotonic() - started < 10


def test_run_takes_down_what_it_started_when_time_runs_out(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    result = run(["bash", "-c", f"sleep 300 & echo $! > {pid_file}; echo hi; wait"], timeout=1)
    assert result.timed_out and result.returncode is None and not result.ok
    assert "hi" in result.output
    child = written_pid(pid_file)
    assert child is not None
    wait_until(lambda: not alive(child), timeout=10, message="the background child to end")
