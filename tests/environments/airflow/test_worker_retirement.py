"""Which workers leave when the fleet shrinks, and that leaving never kills a running task:
the supervisor against fake Celery workers (a main process with a pool of three processes, one
of which runs a "task" child while a flag file exists; SIGTERM is a warm shutdown that waits
for the task)."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from environments.airflow.runtime.supervisor import EnvironmentSupervisor
from environments.plumbing import processes
from tests.environments.airflow.test_runtime_parts import plan
from tests.waiting import wait_until

FAKE_AIRFLOW = """#!{python}
import os, signal, sys, time
from pathlib import Path

if "celery" not in sys.argv:  # a scheduler, triggerer, ...: only runs
    time.sleep(3600)
task = Path(os.environ["FAKE_TASK_FLAG"])
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
pool = []
for slot in range(3):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            if slot == 0 and task.exists():
                child = os.fork()
                if child == 0:
                    while task.exists():
                        time.sleep(0.02)
                    os._exit(0)
                os.waitpid(child, 0)
            time.sleep(0.02)
    pool.append(pid)
print("celery@fake ready.", flush=True)
while not stopping:
    time.sleep(0.02)
while task.exists():  # warm shutdown: the running task finishes first
    time.sleep(0.02)
for pid in pool:
    os.kill(pid, signal.SIGKILL)
"""


@dataclass
class FakeLaunch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ids: dict = field(default_factory=dict)

    def identity(self) -> dict:
        return self.ids


@pytest.fixture
def supervisor(tmp_path: Path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    airflow = venv / "bin" / "airflow"
    airflow.write_text(FAKE_AIRFLOW.format(python=sys.executable))
    airflow.chmod(0o755)
    p = plan(tmp_path, venv=venv, min_workers=1, max_workers=3)
    (tmp_path / "ws").mkdir()

    def environment_for(_plan, component) -> dict[str, str]:
        return {"FAKE_TASK_FLAG": str(tmp_path / f"{component.name}.task"), "PATH": "/usr/bin"}

    made = EnvironmentSupervisor(
        p,
        api_port=1,  # nothing answers: only the workers matter here
        environment_for=environment_for,
        launcher=lambda _plan, argv, env: FakeLaunch([str(a) for a in argv], env, tmp_path),
    )
    made.start()
    yield made
    made.stop(grace=1.0)


def worker_pids(supervisor: EnvironmentSupervisor) -> dict[str, int]:
    return {
        n: c["pid"]
        for n, c in supervisor.tick().components.items()
        if c["kind"] == "worker" and c["state"] != "retiring"
    }


def all_ready(supervisor: EnvironmentSupervisor, count: int) -> bool:
    return supervisor.tick().workers == count


def test_only_idle_workers_retire_and_a_busy_one_finishes_its_task(
    supervisor: EnvironmentSupervisor, tmp_path: Path
) -> None:
    supervisor.scale(3)
    wait_until(lambda: all_ready(supervisor, 3), timeout=30, message="three workers ready")
    (tmp_path / "worker-1.task").touch()
    busy = worker_pids(supervisor)["worker-1"]
    wait_until(lambda: len(processes.children_by_parent().get(busy, [])) == 3 and any(
        processes.children_by_parent().get(c) for c in processes.children_by_parent()[busy]
    ), timeout=10, message="worker-1 to run its task")  # fmt: skip

    supervisor.observe_idle()
    assert supervisor.retire_idle(3) == 0  # idle once is not yet idle
    supervisor.observe_idle()
    assert supervisor.retire_idle(3) == 2
    assert supervisor.workers_wanted == 1
    assert list(worker_pids(supervisor)) == ["worker-1"]

    # Scaling out again does not reuse the number of a worker that is still leaving; a shrink
    # lets idle workers go first (here the newest, not yet seen idle twice, before the busy one).
    supervisor.scale(2)
    names = set(worker_pids(supervisor))
    assert "worker-1" in names and len(names) == 2
    supervisor.scale(1)
    assert list(worker_pids(supervisor)) == ["worker-1"]
    # A busy worker made to leave (MaxWorkers lowered) goes warmly: its task runs to its end.
    supervisor.scale(0)
    assert worker_pids(supervisor) == {}
    task = next(c for c in processes.children_by_parent()[busy]
                if processes.children_by_parent().get(c))  # fmt: skip
    time.sleep(1.0)
    assert processes.is_running(task), "the running task must not be killed"
    assert processes.is_running(busy), "warm shutdown must wait for the running task"
    (tmp_path / "worker-1.task").unlink()
    wait_until(lambda: not processes.is_running(busy), timeout=10, message="worker-1 to exit")
    assert (
        not os.path.exists(f"/proc/{task}/stat") or b"Z" in Path(f"/proc/{task}/stat").read_bytes()
    )


def alive(pid: int) -> bool:
    """Running, and not a zombie left for init to reap."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_killed_worker_leaves_nothing_of_its_group_running(
    supervisor: EnvironmentSupervisor,
) -> None:
    wait_until(lambda: all_ready(supervisor, 1), timeout=30, message="worker-1 ready")
    main = worker_pids(supervisor)["worker-1"]
    pool = wait_until(
        lambda: (lambda kids: kids if len(kids) == 3 else None)(
            processes.children_by_parent().get(main, [])
        ),
        timeout=10,
        message="worker-1's pool",
    )
    os.kill(main, signal.SIGKILL)
    wait_until(
        lambda: worker_pids(supervisor).get("worker-1") not in (None, main),
        timeout=30,
        message="worker-1 started again",
    )
    # The dead worker's pool would otherwise run on, orphaned, beside the new one.
    wait_until(lambda: not [pid for pid in pool if alive(pid)], timeout=5,
               message="the killed worker's pool to be gone")  # fmt: skip
