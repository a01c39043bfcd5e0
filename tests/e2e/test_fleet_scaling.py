"""The worker fleet with real Celery workers on the environment's SQS queue, on one mw1.small
environment (5 tasks per worker) of the session's Airflow server:

- load beyond one worker's slots brings a second worker, which runs tasks of that load;
- once the queue drains, the fleet goes back to MinWorkers, through Celery's warm shutdown,
  with every task of the load finished;
- new MinWorkers/MaxWorkers apply within seconds and restart no other process;
- a worker SIGKILLed mid-task: the task is retried after the scheduler misses its heartbeat
  (lowered to 30 s here) and completes; the worker comes back.

`airdock env status --json` is the window on all of it: worker count, queue depth, and the
last scaling decision with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import LiveServer, wait_for_status
from tests.e2e.airflow_support import prerequisites_for_airflow
from tests.e2e.conftest import AVAILABLE_WITHIN
from tests.e2e.fleet_support import finished, marks, put_nap_dag, release, worker_of
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]


def env_status(live: LiveServer, name: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "env", "status", name, "--json",
         "--data-dir", str(live.data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def runtime_state(live: LiveServer, name: str) -> dict:
    """The runtime's own report (rewritten every second), cheaper to poll than the CLI."""
    path = live.data_dir / "environments" / name / "state" / "runtime.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def workers(state: dict) -> dict[str, dict]:
    return {n: c for n, c in state.get("components", {}).items() if c["kind"] == "worker"}


def test_the_fleet_scales_with_the_queue_and_loses_no_task(airflow_live: LiveServer) -> None:
    live = airflow_live
    tag = uuid.uuid4().hex[:8]
    params = prerequisites_for_airflow(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    name = f"fleet-{tag}"
    mwaa = live.mwaa()
    mwaa.create_environment(
        Name=name,
        EnvironmentClass="mw1.small",
        Schedulers=2,
        MinWorkers=1,
        MaxWorkers=2,
        AirflowConfigurationOptions={
            "core.dags_are_paused_at_creation": "False",
            # A task whose worker died is noticed (and retried) after 30 s, not 5 minutes.
            "scheduler.task_instance_heartbeat_timeout": "30",
        },
        **params,
    )
    try:
        env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN)
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        scaled_out_under_load(live, name, bucket)
        limits_change_live(live, name)
        a_killed_worker_loses_no_task(live, name, bucket)
    finally:
        mwaa.delete_environment(Name=name)


def scaled_out_under_load(live: LiveServer, name: str, bucket: str) -> None:
    s3 = live.aws("s3")
    # 12 tasks for 5 slots: the load needs 3 workers, MaxWorkers allows 2. The tasks hold until
    # released, so the backlog outlasts the new worker's start however loaded the machine is.
    put_nap_dag(s3, bucket, "fleet_load", count=12, seconds=1, hold=True)
    seen: dict[int, str] = {}  # worker pid -> name, over the fleet's life

    def second_worker_ran_a_task() -> bool:
        state = runtime_state(live, name)
        seen.update({c["pid"]: n for n, c in workers(state).items() if c.get("pid")})
        found = marks(s3, bucket, "fleet_load")
        ran_on = {worker_of(r, {n: {"kind": "worker", "pid": p} for p, n in seen.items()})
                  for (_, _, kind), r in found.items() if kind == "start"}  # fmt: skip
        return "worker-2" in ran_on

    wait_until(second_worker_ran_a_task, timeout=420, interval=2.0,
               message="a second worker to run tasks of the load")  # fmt: skip
    status = env_status(live, name)
    assert status["workers_wanted"] == 2
    change = status["autoscaling"]["last_change"]
    assert (change["workers_from"], change["workers_to"]) == (1, 2)
    assert "exceed 1 x 5 slots" in change["reason"]
    assert set(status["queue"]) == {"waiting", "in_flight"}
    release(s3, bucket, "fleet_load")

    # The load drains; the idle worker leaves after the spare spell, and no task was lost.
    wait_until(lambda: finished(marks(s3, bucket, "fleet_load")) == set(range(12)),
               timeout=300, interval=2.0, message="every task of the load to finish")  # fmt: skip
    wait_until(lambda: list(workers(runtime_state(live, name))) == ["worker-1"], timeout=180,
               interval=1.0, message="the fleet to be back at MinWorkers")  # fmt: skip
    status = env_status(live, name)
    assert status["workers_wanted"] == 1
    change = status["autoscaling"]["last_change"]
    assert (change["workers_from"], change["workers_to"]) == (2, 1)
    assert "fit in 1 worker" in change["reason"]
    log = (live.data_dir / "environments" / name / "state" / "logs" / "worker-2.log").read_text()
    assert "warm shutdown" in log.lower(), log[-2000:]


def limits_change_live(live: LiveServer, name: str) -> None:
    mwaa = live.mwaa()
    before = {n: c["pid"] for n, c in runtime_state(live, name)["components"].items()}
    mwaa.update_environment(Name=name, MinWorkers=2, MaxWorkers=3)
    wait_until(lambda: len(workers(runtime_state(live, name))) == 2, timeout=120, interval=0.5,
               message="MinWorkers 2 to bring a second worker")  # fmt: skip
    after = {n: c["pid"] for n, c in runtime_state(live, name)["components"].items()}
    assert {n: after.get(n) for n in before} == before
    wait_for_status(mwaa, name, {"AVAILABLE"}, timeout=120)
    spec = mwaa.get_environment(Name=name)["Environment"]
    assert (spec["MinWorkers"], spec["MaxWorkers"]) == (2, 3)


def a_killed_worker_loses_no_task(live: LiveServer, name: str, bucket: str) -> None:
    s3 = live.aws("s3")
    put_nap_dag(s3, bucket, "fleet_kill", count=1, seconds=1, retries=1, hold=True)
    started = wait_until(lambda: marks(s3, bucket, "fleet_kill").get((0, 1, "start")),
                         timeout=300, interval=0.5, message="the task to start")  # fmt: skip
    components = runtime_state(live, name)["components"]
    victim = worker_of(started, components)
    assert victim is not None, (started, components)
    worker_pid = components[victim]["pid"]
    # The worker and every process under it that runs the task die at once, as with a host
    # that goes away.
    os.killpg(worker_pid, signal.SIGKILL)
    for pid in started["pids"][: started["pids"].index(worker_pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    release(s3, bucket, "fleet_kill")
    wait_until(lambda: (0, 2, "end") in marks(s3, bucket, "fleet_kill"), timeout=300,
               interval=2.0, message="the task to be retried and finish")  # fmt: skip
    assert (0, 1, "end") not in marks(s3, bucket, "fleet_kill")
    restarted = runtime_state(live, name)["components"][victim]
    assert restarted["restarts"] >= 1 and restarted["pid"] != worker_pid
