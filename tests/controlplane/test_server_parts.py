"""The supervisor's parts with real forked children: deaths noticed, restarts with backoff,
stops in reverse order, and the data-dir lock."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from controlplane.server import datadir
from controlplane.server.parts import ForkedProcess, Supervised, Supervisor, backoff
from tests.waiting import wait_until


def _sleeper() -> int:
    time.sleep(60)
    return 0


class Recorded:
    """A part that notes when it is stopped, around a real forked child."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.child = ForkedProcess(_sleeper, grace=2)

    @property
    def pid(self) -> int | None:
        return self.child.pid

    @property
    def last_exit(self) -> str | None:
        return self.child.last_exit

    def start(self) -> None:
        self.child.start()

    def alive(self) -> bool:
        return self.child.alive()

    def stop(self) -> None:
        self.log.append(self.name)
        self.child.stop()


def _states(data_dir: Path) -> dict:
    return json.loads((data_dir / "run" / "parts.json").read_text())["parts"]


def test_backoff_doubles_up_to_a_cap():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(50) == 30.0


def test_a_child_that_exits_is_seen_with_its_status():
    child = ForkedProcess(lambda: 3)
    child.start()
    wait_until(lambda: not child.alive(), message="the child to exit")
    assert child.last_exit == "exited with status 3"
    assert child.pid is None


def test_a_killed_part_is_restarted_and_the_parts_file_says_so(tmp_path):
    stopped: list[str] = []
    part = Recorded("worker", stopped)
    supervisor = Supervisor(tmp_path, [Supervised("worker", part)])
    supervisor.start_all()
    try:
        first = part.pid
        assert _states(tmp_path)["worker"]["state"] == "up"
        assert _states(tmp_path)["worker"]["pid"] == first
        os.kill(first, signal.SIGKILL)

        def recorded_down() -> bool:
            supervisor.tick()
            return _states(tmp_path)["worker"]["state"] == "down"

        wait_until(recorded_down, message="the death to be recorded")
        assert _states(tmp_path)["worker"]["last_exit"] == "killed by SIGKILL"

        def back() -> bool:
            supervisor.tick()
            return _states(tmp_path)["worker"]["state"] == "up"

        wait_until(back, message="the restart")
        state = _states(tmp_path)["worker"]
        assert state["restarts"] == 1
        assert state["pid"] == part.pid != first
    finally:
        supervisor.stop_all()
    assert _states(tmp_path)["worker"]["state"] == "stopped"


def test_parts_stop_in_reverse_order(tmp_path):
    stopped: list[str] = []
    parts = [Supervised(name, Recorded(name, stopped)) for name in ("aws", "background", "api")]
    supervisor = Supervisor(tmp_path, parts)
    supervisor.start_all()
    supervisor.stop_all()
    assert stopped == ["api", "background", "aws"]
    assert not any(part.part.alive() for part in parts)


def test_a_data_dir_is_claimed_once(tmp_path):
    lock = datadir.claim(tmp_path)
    try:
        with pytest.raises(datadir.DataDirInUse) as refused:
            datadir.claim(tmp_path, wait=0)
        assert refused.value.pid == os.getpid()
        assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        lock.release()
    datadir.claim(tmp_path).release()
