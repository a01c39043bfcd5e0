"""Updates that need new Airflow processes lose no task and never take the environment down.

One environment on the session's Airflow server goes through, in order:

- a configuration update while a task runs: the new set of processes takes over, the old worker
  finishes its task (Celery's warm shutdown: first try, no retry) and only then exits;
- an update whose configuration crashes every new process: it rolls back, the environment ends
  UPDATE_FAILED (MWAA's status for a rolled-back, usable environment) with LastUpdate FAILED,
  and the processes that served before still run DAGs.

A version change that MWAA refuses (2.10.3 to 3.0.6 in place) is refused the same way, on the
session's shared 2.10.3 environment, and changes nothing.

A version change that MWAA allows (2.11.0 to 3.0.6), whose new processes then cannot run, puts
the schema back with the newer Airflow (`airflow db downgrade`, through some forty revisions)
and runs the old version again.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from environments.airflow.metadb.databases import MetadataDatabases
from tests.conftest import LiveServer, wait_for_status
from tests.e2e.airflow_support import embedded_admin_url, prerequisites_for_airflow
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

AVAILABLE_WITHIN = 700.0
UPDATE_WITHIN = 600.0
TASK_WITHIN = 240.0

# A task that says it started, then holds until the test releases it: it is running for certain
# while the update replaces the processes under it. No retries, so a lost task cannot hide.
HELD_DAG = """
import time
from datetime import datetime

import boto3
from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False,
     default_args={{"retries": 0}})
def held():
    @task
    def work(**context):
        import os
        s3 = boto3.client("s3")
        s3.put_object(Bucket="{bucket}", Key="results/{dag_id}.started", Body=b"")
        for _ in range(600):
            try:
                s3.head_object(Bucket="{bucket}", Key="release/{dag_id}")
                break
            except Exception:
                time.sleep(1)
        body = "%s|%s" % (context["ti"].try_number, os.getpid())
        s3.put_object(Bucket="{bucket}", Key="results/{dag_id}.txt", Body=body.encode())

    work()


held()
"""

QUICK_DAG = """
from datetime import datetime

import boto3
from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False)
def quick():
    @task
    def work():
        boto3.client("s3").put_object(Bucket="{bucket}", Key="results/{dag_id}.txt", Body=b"ok")

    work()


quick()
"""


def runtime_state(live: LiveServer, name: str) -> dict:
    path = live.data_dir / "environments" / name / "state" / "runtime.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def pids(live: LiveServer, name: str) -> dict[str, int]:
    components = runtime_state(live, name).get("components", {})
    return {n: c["pid"] for n, c in components.items() if c.get("pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def s3_text(live: LiveServer, bucket: str, key: str) -> str | None:
    s3 = live.aws("s3")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        return None


def run_a_new_dag(live: LiveServer, bucket: str, tag: str, what: str | Callable[[], str]) -> None:
    """Put QUICK_DAG in the DAG folder and wait for its task to write its result."""
    quick = f"quick_{tag}"
    live.aws("s3").put_object(
        Bucket=bucket,
        Key=f"dags/{quick}.py",
        Body=QUICK_DAG.format(dag_id=quick, bucket=bucket).encode(),
    )
    wait_until(
        lambda: s3_text(live, bucket, f"results/{quick}.txt"),
        timeout=TASK_WITHIN,
        interval=1.0,
        message=what,
    )


def test_updates_roll_without_losing_a_task_and_a_failed_one_rolls_back(
    airflow_live: LiveServer,
) -> None:
    live, mwaa, s3 = airflow_live, airflow_live.mwaa(), airflow_live.aws("s3")
    tag = uuid.uuid4().hex[:8]
    params = prerequisites_for_airflow(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    name = f"roll-{tag}"
    options = {"core.dags_are_paused_at_creation": "False"}
    held = f"held_{tag}"
    s3.put_object(
        Bucket=bucket,
        Key=f"dags/{held}.py",
        Body=HELD_DAG.format(dag_id=held, bucket=bucket).encode(),
    )
    # mw1.micro: one scheduler, the fewest processes per set (two sets run during an update).
    mwaa.create_environment(
        Name=name, AirflowConfigurationOptions=options, EnvironmentClass="mw1.micro", **params
    )
    env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")

    # --- a configuration update while a task runs ---------------------------------------
    wait_until(
        lambda: s3_text(live, bucket, f"results/{held}.started") is not None,
        timeout=TASK_WITHIN,
        interval=1.0,
        message=lambda: f"the held task to start; runtime {runtime_state(live, name)}",
    )
    before = pids(live, name)
    old_port = runtime_state(live, name)["api_port"]
    changed = {**options, "core.default_task_retries": "0"}
    mwaa.update_environment(Name=name, AirflowConfigurationOptions=changed)
    env = wait_for_status(mwaa, name, {"AVAILABLE", "UPDATE_FAILED", "UNAVAILABLE"}, UPDATE_WITHIN)
    assert env["Status"] == "AVAILABLE" and env["LastUpdate"]["Status"] == "SUCCESS", env
    assert env["AirflowConfigurationOptions"] == changed
    after = pids(live, name)
    assert set(after.values()).isdisjoint(before.values()), (before, after)
    assert runtime_state(live, name)["api_port"] != old_port
    # The old set retires: its scheduler is gone, its worker still runs the held task.
    wait_until(lambda: not alive(before["scheduler-1"]), timeout=60, message="old scheduler gone")
    assert alive(before["worker-1"]), "the old worker quit before its task was done"
    assert s3_text(live, bucket, f"results/{held}.txt") is None

    s3.put_object(Bucket=bucket, Key=f"release/{held}", Body=b"")
    body = wait_until(
        lambda: s3_text(live, bucket, f"results/{held}.txt"),
        timeout=TASK_WITHIN,
        interval=1.0,
        message="the held task to finish on the retiring worker",
    )
    assert body.split("|")[0] == "1"  # its first and only try: not lost, not retried
    # Its task done, the old worker exits, and with it the rest of the old set.
    wait_until(
        lambda: not any(alive(pid) for pid in before.values()),
        timeout=120,
        message=lambda: f"the old set to exit: {[p for p in before.values() if alive(p)]}",
    )

    # --- an update whose processes crash: rolled back, the old ones serve on ------------
    serving = pids(live, name)
    broken = {**changed, "core.parallelism": "many"}
    mwaa.update_environment(Name=name, AirflowConfigurationOptions=broken)
    env = wait_for_status(mwaa, name, {"AVAILABLE", "UPDATE_FAILED", "UNAVAILABLE"}, UPDATE_WITHIN)
    assert env["Status"] == "UPDATE_FAILED", env["LastUpdate"]
    assert env["LastUpdate"]["Status"] == "FAILED"
    assert "keeps exiting" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert env["AirflowConfigurationOptions"] == changed  # the previous configuration is back
    assert pids(live, name) == serving  # never stopped, never restarted
    assert all(alive(pid) for pid in serving.values())
    run_a_new_dag(live, bucket, tag, "a new DAG to run on the processes that kept serving")

    mwaa.delete_environment(Name=name)


def test_a_major_upgrade_mwaa_refuses_is_refused_and_changes_nothing(shared_environment) -> None:
    shared = shared_environment("2.10.3")
    mwaa = shared.live.mwaa()
    before = mwaa.get_environment(Name=shared.name)["Environment"]
    with pytest.raises(mwaa.exceptions.ValidationException, match=r"2\.10\.3 to 3\.0\.6.*2\.11\.0"):
        mwaa.update_environment(Name=shared.name, AirflowVersion="3.0.6")
    after = mwaa.get_environment(Name=shared.name)["Environment"]
    assert after["Status"] == "AVAILABLE" and after["AirflowVersion"] == "2.10.3"
    assert after["LastUpdate"] == before["LastUpdate"]
    assert pids(shared.live, shared.name)  # its processes run on, untouched


def schema_revision(live: LiveServer, name: str) -> str:
    """The Alembic revision of the environment's metadata database, read as the environment's
    own database user."""
    databases = MetadataDatabases(embedded_admin_url(live.data_dir), live.data_dir)
    with psycopg.connect(databases.address(name).libpq_url(), autocommit=True) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_a_failed_version_change_puts_the_schema_back_and_runs_the_old_version(
    airflow_live: LiveServer,
) -> None:
    live, mwaa = airflow_live, airflow_live.mwaa()
    tag = uuid.uuid4().hex[:8]
    params = prerequisites_for_airflow(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    name = f"back-{tag}"
    options = {"core.dags_are_paused_at_creation": "False"}
    mwaa.create_environment(
        Name=name,
        AirflowVersion="2.11.0",
        AirflowConfigurationOptions=options,
        EnvironmentClass="mw1.micro",
        **params,
    )
    env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
    revision = schema_revision(live, name)

    # Only the scheduler reads this option, so the migration up and Airdock's user on 3.0.6
    # succeed, and the new scheduler then exits at every start.
    broken = {**options, "scheduler.scheduler_heartbeat_sec": "often"}
    mwaa.update_environment(Name=name, AirflowVersion="3.0.6", AirflowConfigurationOptions=broken)
    env = wait_for_status(
        mwaa, name, {"AVAILABLE", "UPDATE_FAILED", "UNAVAILABLE"}, AVAILABLE_WITHIN
    )
    migrations = live.data_dir / "environments" / name / "state" / "logs" / "db-migrate.log"
    log = migrations.read_text()
    assert env["Status"] == "UPDATE_FAILED", (env["LastUpdate"], log[-3000:])
    message = env["LastUpdate"]["Error"]["ErrorMessage"]
    assert "from 2.11.0 to 3.0.6 failed" in message and "runs again" in message, message
    assert "restoring the database failed" not in message, message
    assert env["AirflowVersion"] == "2.11.0"
    assert env["AirflowConfigurationOptions"] == options
    # The schema went up to 3.0's and came back down, by 3.0.6's Airflow, to where it was.
    assert "Running upgrade" in log, log[-3000:]
    downgrade = log.rpartition("Performing downgrade")[2]
    assert f"-> {revision}," in downgrade and "Downgrade complete" in downgrade, log[-3000:]
    assert schema_revision(live, name) == revision

    run_a_new_dag(
        live, bucket, tag, lambda: f"a DAG to run on 2.11.0 again; {runtime_state(live, name)}"
    )
    mwaa.delete_environment(Name=name)
