"""The fleet beyond one scheduler and one host, on one environment and one server (metadata
in the external PostgreSQL, so a second "host" can reach it):

- with Schedulers=2, one scheduler SIGKILLed (and killed again whenever it comes back) leaves
  scheduling going: a new DAG's run completes, queued by the surviving scheduler;
- a worker host joins with `airdock worker` from a data dir of its own, shows up in
  `airdock env status`, and runs a new DAG's task while the control plane's own worker is
  stopped: the task reaches it before its mirror has the DAG (its polling pass is an hour
  apart here), waits for the sync it asks for, and runs, with what the environment's startup
  script exported;
- after an update (a new startup script), the worker host rebuilds and replaces its workers;
- MWAA's metrics are in CloudWatch (namespace AmazonMWAA, Environment first) for boto3 and
  the AWS CLI.

Slow (a real Airflow), hence the `slow` marker; CI runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from environments.airflow.metadb.databases import MetadataDatabases
from tests.conftest import (
    PG_ADMIN_URL,
    TEST_UV_CACHE,
    LiveServer,
    postgres_available,
    start_server,
    wait_for_status,
)
from tests.e2e.airflow_support import prerequisites_for_airflow
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE_WITHIN = 700.0
TASK_WITHIN = 240.0
SERVER_WITHIN = 300.0

# Runs at once; its task writes where it ran (the DAG file's path tells the host's folder).
DAG = """
from datetime import datetime, timedelta

import boto3
from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False,
     default_args={{"retries": 3, "retry_delay": timedelta(seconds=5)}})
def probe():
    @task
    def write():
        import os
        marks = [os.environ.get("FLEET_STARTUP_MARK", ""), os.environ["AIRFLOW_HOME"]]
        body = "|".join([__file__, *marks])
        boto3.client("s3").put_object(
            Bucket="{bucket}", Key="results/{dag_id}.txt", Body=body.encode()
        )

    write()


probe()
"""

# Run by MWAA before each component starts, on a worker host too; tasks see what it exports.
STARTUP = b'export FLEET_STARTUP_MARK="startup ran for $MWAA_AIRFLOW_COMPONENT"\n'


class Fleet:
    def __init__(self, live: LiveServer, name: str, bucket: str) -> None:
        self.live, self.name, self.bucket = live, name, bucket
        self.db_url = MetadataDatabases(PG_ADMIN_URL, live.data_dir).address(name).libpq_url()
        self.second_host: subprocess.Popen | None = None
        self.second_dir: Path | None = None

    def airdock(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "controlplane.cli", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    def status(self) -> dict:
        done = self.airdock(
            "env", "status", self.name, "--json", "--data-dir", str(self.live.data_dir)
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def state(self) -> dict:
        """What `env status` reports, read from the runtime's file (cheap enough to poll on a
        busy machine, where each CLI run takes seconds)."""
        path = self.live.data_dir / "environments" / self.name / "state" / "runtime.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def put_dag(self, dag_id: str) -> None:
        body = DAG.format(dag_id=dag_id, bucket=self.bucket).encode()
        self.live.aws("s3").put_object(Bucket=self.bucket, Key=f"dags/{dag_id}.py", Body=body)

    def result(self, dag_id: str) -> str | None:
        s3 = self.live.aws("s3")
        try:
            answer = s3.get_object(Bucket=self.bucket, Key=f"results/{dag_id}.txt")
        except s3.exceptions.NoSuchKey:
            return None
        return answer["Body"].read().decode()

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("fleet")
    live = start_server(
        root / "data", "--airflow-database-url", PG_ADMIN_URL, airflow=True, timeout=SERVER_WITHIN
    )
    fleet: Fleet | None = None
    try:
        tag = uuid.uuid4().hex[:8]
        params = prerequisites_for_airflow(live, tag)
        name = f"fleet-{tag}"
        bucket = params["SourceBucketArn"].split(":::")[1]
        startup = live.aws("s3").put_object(Bucket=bucket, Key="startup.sh", Body=STARTUP)
        mwaa = live.mwaa()
        mwaa.create_environment(
            Name=name,
            StartupScriptS3Path="startup.sh",
            StartupScriptS3ObjectVersion=startup["VersionId"],
            AirflowConfigurationOptions={"core.dags_are_paused_at_creation": "False"},
            Schedulers=2,
            MinWorkers=1,
            MaxWorkers=1,
            **params,
        )
        env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN)
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        fleet = Fleet(live, name, bucket)
        start_second_host(fleet, root / "second-host")  # builds its venv while the tests run
        yield fleet
    finally:
        if fleet is not None and fleet.second_host is not None:
            fleet.second_host.send_signal(signal.SIGINT)
            try:
                fleet.second_host.wait(90)
            except subprocess.TimeoutExpired:
                fleet.second_host.kill()
                fleet.second_host.wait()
        live.stop()
        if fleet is not None:  # the external server outlives the test: leave nothing there
            MetadataDatabases(PG_ADMIN_URL, live.data_dir).drop(fleet.name)


def start_second_host(fleet: Fleet, folder: Path) -> None:
    """`airdock worker` as an operator runs it on another machine: its own folder, the join
    file copied over, and the client profile Airdock writes (the admin's keys here)."""
    folder.mkdir()
    join = folder / "join.json"
    done = fleet.airdock(
        "worker-join", fleet.name, "--data-dir", str(fleet.live.data_dir), "--output", str(join)
    )
    assert done.returncode == 0, done.stderr
    assert oct(join.stat().st_mode & 0o777) == "0o600"
    log = open(folder / "worker.log", "ab")  # noqa: SIM115
    fleet.second_dir = folder / "work"
    fleet.second_host = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli", "worker", fleet.name, "--join", str(join),
         "--profile", "airdock", "--work-dir", str(fleet.second_dir),
         "--uv-cache", str(TEST_UV_CACHE), "--host-id", "second-host", "--concurrency", "2",
         "--stop-grace", "20", "--sync-seconds", "3600"],
        cwd=folder, env=fleet.live.cli_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()


def test_one_of_two_schedulers_killed_and_scheduling_goes_on(fleet: Fleet) -> None:
    status = fleet.status()
    assert {"scheduler-1", "scheduler-2"} <= set(status["components"])
    assert status["components"]["scheduler-2"]["state"] == "healthy"
    running_jobs = {
        row[0]
        for row in fleet.query(
            "SELECT id FROM job WHERE job_type = 'SchedulerJob' AND state = 'running'"
        )
    }
    assert len(running_jobs) == 2, running_jobs
    survivor_pid = status["components"]["scheduler-2"]["pid"]

    # Keep scheduler-1 dead: SIGKILL it, and again each time the supervisor brings it back.
    killed: set[int] = set()

    def keep_scheduler_1_dead() -> None:
        pid = fleet.state()["components"]["scheduler-1"]["pid"]
        if pid and pid not in killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)

    keep_scheduler_1_dead()
    killed_at = datetime.now(UTC)
    dag_id = f"ha_{uuid.uuid4().hex[:8]}"
    fleet.put_dag(dag_id)

    def done() -> str | None:
        keep_scheduler_1_dead()
        return fleet.result(dag_id)

    wait_until(
        done,
        timeout=TASK_WITHIN,
        interval=0.5,
        message=lambda: f"{dag_id}'s task; {fleet.state()}",
    )
    assert fleet.state()["components"]["scheduler-2"]["pid"] == survivor_pid
    [(queued_by,)] = fleet.query(
        "SELECT queued_by_job_id FROM task_instance WHERE dag_id = %s", dag_id
    )
    # Queued by a scheduler that ran before the kill and still heartbeats after it: the survivor.
    # The task can finish before the survivor's next heartbeat (one every few seconds), so the
    # heartbeat is awaited rather than read once; the killed scheduler's never moves again.
    assert queued_by in running_jobs

    def heartbeat_after_kill() -> bool:
        [(heartbeat,)] = fleet.query("SELECT latest_heartbeat FROM job WHERE id = %s", queued_by)
        return heartbeat > killed_at + timedelta(seconds=2)

    wait_until(
        heartbeat_after_kill, timeout=60, interval=1.0,
        message=f"job {queued_by}, which queued {dag_id}, to heartbeat after the kill",
    )  # fmt: skip
    [(state,)] = fleet.query("SELECT state FROM dag_run WHERE dag_id = %s", dag_id)
    assert state in ("success", "running")  # the task is done; the run is closed a beat later

    # Left alone, scheduler-1 comes back.
    wait_until(
        lambda: fleet.state()["components"]["scheduler-1"]["state"] == "healthy",
        timeout=180, interval=1.0, message="scheduler-1 to come back",
    )  # fmt: skip


def test_a_worker_joins_from_a_second_host(fleet: Fleet) -> None:
    assert fleet.second_host is not None and fleet.second_dir is not None

    def joined() -> dict | None:
        assert fleet.second_host.poll() is None, "airdock worker exited; see worker.log"
        state = fleet.state()
        hosts = [h for h in state.get("remote_workers", []) if h["ready"] >= 1]
        return state if hosts else None

    wait_until(joined, timeout=600, interval=2.0, message="the second host's worker")
    status = fleet.status()
    [host] = status["remote_workers"]
    assert host["host"].startswith("second-host:") and host["concurrency"] == 2
    assert status["workers"] == 2  # the control plane's own one and the second host's

    dag_id, body = run_on_second_host(fleet, "remote")
    dag_file, mark, home = body.split("|")
    assert dag_file.startswith(str(fleet.second_dir)), body
    # The host ran the environment's startup script for its workers, as MWAA does in each
    # container (a worker host builds its workers' variables from nothing else).
    assert mark == "startup ran for worker", body
    assert home.startswith(str(fleet.second_dir)), body
    assert Path(dag_file).is_file()  # mirrored from S3 into the second host's folder
    # ... by the pass its task asked for: the periodic one is an hour away.
    log = (fleet.second_dir.parent / "worker.log").read_text()
    assert "DAGs synced for a task whose DAG file was not here yet" in log
    [(tries,)] = fleet.query("SELECT try_number FROM task_instance WHERE dag_id = %s", dag_id)
    assert tries == 1  # it waited rather than failed and was retried


def run_on_second_host(fleet: Fleet, prefix: str) -> tuple[str, str]:
    """A new DAG's task, run with the control plane's workers frozen: only the second host's
    can take it. Its last long poll of the queue ends first, so it holds no message."""
    status = fleet.status()
    local = [c["pid"] for c in status["components"].values() if c["kind"] == "worker"]
    for pid in local:
        os.killpg(pid, signal.SIGSTOP)
    try:
        time.sleep(12)
        dag_id = f"{prefix}_{uuid.uuid4().hex[:8]}"
        fleet.put_dag(dag_id)
        body = wait_until(
            lambda: fleet.result(dag_id), timeout=TASK_WITHIN, interval=1.0,
            message=lambda: f"{dag_id}'s task on the second host; {fleet.state()}",
        )  # fmt: skip
        return dag_id, body
    finally:
        for pid in local:
            os.killpg(pid, signal.SIGCONT)


def test_the_second_host_follows_an_update(fleet: Fleet) -> None:
    assert fleet.second_host is not None and fleet.second_dir is not None
    mwaa = fleet.live.mwaa()
    script = STARTUP.replace(b"startup ran", b"startup v2 ran")
    version = fleet.live.aws("s3").put_object(Bucket=fleet.bucket, Key="startup.sh", Body=script)
    mwaa.update_environment(
        Name=fleet.name, StartupScriptS3Path="startup.sh",
        StartupScriptS3ObjectVersion=version["VersionId"],
    )  # fmt: skip
    wait_for_status(mwaa, fleet.name, {"AVAILABLE"}, timeout=AVAILABLE_WITHIN)
    log = fleet.second_dir.parent / "worker.log"
    wait_until(
        lambda: "workers rebuilt for the update" in log.read_text(),
        timeout=180, interval=2.0, message="the second host to rebuild its workers",
    )  # fmt: skip
    assert "StartupScriptS3ObjectVersion" in log.read_text()  # the change it saw
    _, body = run_on_second_host(fleet, "updated")
    dag_file, mark, _ = body.split("|")
    assert dag_file.startswith(str(fleet.second_dir)), body
    assert mark == "startup v2 ran for worker", body
    assert fleet.second_host.poll() is None


def test_mwaa_metrics_are_in_cloudwatch(fleet: Fleet) -> None:
    cloudwatch = fleet.live.aws("cloudwatch")
    wanted = {"SchedulerHeartbeat", "QueuedTasks", "RunningTasks", "DagBagSize", "TotalParseTime",
              "WorkerCount", "TaskInstanceSuccesses"}  # fmt: skip

    def published() -> dict[str, list] | None:
        found: dict[str, list] = {}
        pages = cloudwatch.get_paginator("list_metrics").paginate(
            Namespace="AmazonMWAA", Dimensions=[{"Name": "Environment", "Value": fleet.name}]
        )
        for page in pages:
            for metric in page["Metrics"]:
                found.setdefault(metric["MetricName"], []).append(metric["Dimensions"])
        return found if wanted <= set(found) else None

    found = wait_until(published, timeout=120, interval=3.0, message=lambda: f"metrics {wanted}")
    for dimensions in found.values():
        assert dimensions[0][0] == {"Name": "Environment", "Value": fleet.name}
    assert [
        {"Name": "Environment", "Value": fleet.name},
        {"Name": "Function", "Value": "Scheduler"},
    ] in found["SchedulerHeartbeat"]

    now = datetime.now(UTC)

    def statistic(name: str, function: str | None, stat: str) -> float:
        dimensions = [{"Name": "Environment", "Value": fleet.name}]
        if function:
            dimensions.append({"Name": "Function", "Value": function})
        points = cloudwatch.get_metric_statistics(
            Namespace="AmazonMWAA", MetricName=name, Dimensions=dimensions,
            StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
            Period=3600, Statistics=[stat],
        )["Datapoints"]  # fmt: skip
        return sum(p[stat] for p in points)

    assert statistic("SchedulerHeartbeat", "Scheduler", "Sum") > 0
    # The two probe DAGs: the DAG processor reports its count after a parsing loop, and the
    # sidecar publishes every 10 s, so the second one may still be on its way.
    wait_until(
        lambda: statistic("DagBagSize", "DAG Processing", "Maximum") >= 2,
        timeout=120,
        interval=5.0,
        message=lambda: "DagBagSize to count both probe DAGs",
    )
    assert statistic("WorkerCount", "Celery", "Maximum") >= 2  # with the second host's

    # The AWS CLI reads the same.
    done = fleet.live.aws_cli("cloudwatch", "list-metrics", "--namespace", "AmazonMWAA",
                              "--metric-name", "QueuedTasks")  # fmt: skip
    names = {m["MetricName"] for m in json.loads(done.stdout)["Metrics"]}
    assert names == {"QueuedTasks"}
