"""The supervisor's side of a rolling update, with a stand-in `airflow` (a small script): a
retiring worker gets Celery's warm shutdown, so its running task is not signalled and
finishes; a new set whose processes keep exiting is reported as crash-looping."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from pathlib import Path

from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.supervisor import EnvironmentSupervisor
from tests.environments.airflow.test_runtime_parts import plan
from tests.waiting import wait_until

# `airflow celery worker ...` forks a "task" that holds until released and then writes
# `done` (it would die of a SIGTERM of its own), says " ready." and, on SIGTERM, waits for the
# task as Celery's warm shutdown does. Every other command sleeps; with FAKE_CRASH it exits.
FAKE_AIRFLOW = """#!{python}
import os, signal, sys, time
here = os.environ["FAKE_DIR"]
if os.environ.get("FAKE_CRASH"):
    sys.exit(3)
if sys.argv[1] == "celery":
    task = os.fork()
    if task == 0:
        while not os.path.exists(os.path.join(here, "release")):
            time.sleep(0.05)
        open(os.path.join(here, "done"), "w").close()
        os._exit(0)

    def warm_shutdown(*_):
        os.waitpid(task, 0)
        sys.exit(0)

    signal.signal(signal.SIGTERM, warm_shutdown)
    print(" ready.", flush=True)
while True:
    time.sleep(0.1)
"""


@dataclasses.dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path

    def identity(self) -> dict:
        return {}


def fake_plan(tmp_path: Path) -> RuntimePlan:
    p = plan(tmp_path, schedulers=1, min_workers=1, environment_class="mw1.small")
    script = p.venv / "bin" / "airflow"
    script.parent.mkdir(parents=True)
    script.write_text(FAKE_AIRFLOW.format(python=sys.executable))
    script.chmod(0o755)
    return p


def supervisor(p: RuntimePlan, crash: bool = False, generation: int = 0) -> EnvironmentSupervisor:
    env = {"FAKE_DIR": str(p.workspace), "PATH": os.environ["PATH"]}
    if crash:
        env["FAKE_CRASH"] = "1"
    return EnvironmentSupervisor(
        p,
        api_port=1,  # nothing answers: only the worker and the exits matter here
        environment_for=lambda plan, component: env,
        launcher=lambda plan, argv, e: Launch([str(a) for a in argv], e, p.workspace),
        generation=generation,
    )


def test_a_retiring_worker_lets_its_running_task_finish(tmp_path: Path) -> None:
    p = fake_plan(tmp_path)
    old = supervisor(p)
    old.start()
    worker_log = old.log_path("worker-1")
    wait_until(lambda: b" ready." in worker_log.read_bytes(), timeout=30, message="worker ready")
    pid_files = sorted(f.name for f in old.run_dir.iterdir())
    assert "worker-1.pid" in pid_files

    retiring = threading.Thread(target=old.retire, kwargs={"worker_grace": 60.0})
    retiring.start()
    time.sleep(1.0)
    # The schedulers and the rest are gone; the worker still waits for its task.
    assert retiring.is_alive()
    assert not (p.workspace / "done").exists()
    (p.workspace / "release").touch()
    retiring.join(30)
    assert not retiring.is_alive()
    assert (p.workspace / "done").exists()  # the task was never signalled: it finished
    assert not list(old.run_dir.iterdir())  # every pid file is gone with its process


def test_a_new_set_that_keeps_exiting_is_crash_looping(tmp_path: Path) -> None:
    p = fake_plan(tmp_path)
    new = supervisor(p, crash=True, generation=3)
    new.start()
    try:
        assert any(f.name.endswith("~3.pid") for f in new.run_dir.iterdir())

        def looping() -> str | None:
            new.tick()
            return new.crash_looping()

        why = wait_until(looping, timeout=30, interval=0.2, message="the crash loop to show")
        assert "keeps exiting" in why and "exited with code 3" in why
    finally:
        new.stop(grace=1.0)
