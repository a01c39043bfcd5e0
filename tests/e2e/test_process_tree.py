"""The process tree of `airdock serve`, tested by killing its real processes with SIGKILL.

Each test starts its own server, finds its children in `<data dir>/run/parts.json` (written
by the supervisor), kills one or all of them, and checks from the outside, with boto3 and
`/_airdock/health`, that the server restarts what died and that no work is lost or done twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, LiveServer, make_prerequisites, start_server, wait_for_status
from tests.waiting import wait_until

WORKER_HEADER = "x-airdock-api-worker"


def parts(live: LiveServer) -> dict:
    return json.loads((live.data_dir / "run" / "parts.json").read_text())


def pid_of(live: LiveServer, part: str) -> int:
    pid = parts(live)["parts"][part]["pid"]
    assert pid, f"{part} has no pid: {parts(live)}"
    return pid


def health(live: LiveServer) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(live.url + "/_airdock/health", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def restarted(live: LiveServer, part: str, old_pid: int, restarts: int = 1) -> dict:
    """Wait until `part` is up again under a new pid, after `restarts` restarts."""

    def back() -> dict | None:
        state = parts(live)["parts"][part]
        if state["state"] == "up" and state["pid"] != old_pid and state["restarts"] >= restarts:
            return state
        return None

    return wait_until(back, timeout=60, message=lambda: f"{part} to come back: {parts(live)}")


def healthy(live: LiveServer) -> dict:
    return wait_until(
        lambda: (lambda s: s[1] if s[0] == 200 else None)(health(live)),
        timeout=60,
        message=lambda: f"health to be ok again: {health(live)}",
    )


def kill_tree(live: LiveServer) -> None:
    """SIGKILL the supervisor and every child at once, as a power cut would."""
    pids = [p["pid"] for p in parts(live)["parts"].values() if p["pid"]]
    for pid in [live.process.pid, *pids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    live.process.wait()


def startup_script(live: LiveServer, bucket: str, key: str, seconds: int) -> str:
    """A startup script that leaves a mark in AIRFLOW_HOME each time it starts, then sleeps."""
    body = f'touch "$AIRFLOW_HOME/started-$$"\nsleep {seconds}\n'.encode()
    return live.aws("s3").put_object(Bucket=bucket, Key=key, Body=body)["VersionId"]


def test_a_killed_background_worker_is_restarted_and_its_work_resumes(tmp_path):
    live = start_server(tmp_path / "data")
    try:
        mwaa = live.mwaa()
        params = make_prerequisites(live)
        bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
        version = startup_script(live, bucket, "slow/startup.sh", seconds=3)
        mwaa.create_environment(
            Name="resumed",
            StartupScriptS3Path="slow/startup.sh",
            StartupScriptS3ObjectVersion=version,
            **params,
        )
        home = live.data_dir / "environments" / "resumed" / "home"
        wait_until(lambda: list(home.glob("started-*")), message="the startup script to run")
        background = pid_of(live, "background")
        os.kill(background, signal.SIGKILL)
        started_before = set(home.glob("started-*"))
        assert mwaa.get_environment(Name="resumed")["Environment"]["Status"] == "CREATING"

        restarted(live, "background", background)
        env = wait_for_status(mwaa, "resumed", {"AVAILABLE", "CREATE_FAILED"}, timeout=60)
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        # The new worker picked the create up where it stood: the step that was cut short ran
        # again, to its end.
        assert set(home.glob("started-*")) - started_before
        assert parts(live)["parts"]["background"]["last_exit"] == "killed by SIGKILL"
        assert healthy(live)["parts"]["background"] == {"state": "up", "restarts": 1}
    finally:
        live.stop()


def test_a_killed_api_worker_is_restarted_and_the_service_continues(tmp_path):
    live = start_server(tmp_path / "data", "--api-workers", "2")
    try:
        mwaa = live.mwaa()
        victim = pid_of(live, "api-1")
        os.kill(victim, signal.SIGKILL)
        # Every call made while it is down and coming back is served, by the other worker or
        # by the restarted one (each call on a new connection, see below).
        closing = live.mwaa()
        closing.meta.events.register("before-send.mwaa.*", _close_connection)
        while parts(live)["parts"]["api-1"]["pid"] in (victim, None):
            assert closing.list_environments()["Environments"] == []
        restarted(live, "api-1", victim)
        assert healthy(live)["parts"]["api-1"] == {"state": "up", "restarts": 1}
        assert mwaa.list_environments()["Environments"] == []
    finally:
        live.stop()


def test_a_killed_embedded_aws_shows_in_health_comes_back_and_environments_recover(tmp_path):
    live = start_server(tmp_path / "data")
    try:
        mwaa = live.mwaa()
        params = make_prerequisites(live)
        mwaa.create_environment(Name="before", **params)
        wait_for_status(mwaa, "before", {"AVAILABLE"})
        aws = pid_of(live, "embedded_aws")
        os.kill(aws, signal.SIGKILL)

        _, body = wait_until(
            lambda: (lambda s: s if s[0] == 503 else None)(health(live)),
            interval=0.02,
            message="health to report the embedded AWS down",
        )
        assert body["status"] == "degraded"
        assert body["parts"]["embedded_aws"]["state"] == "down"
        # Touched while the AWS is away: a new environment and a change to an existing one.
        mwaa.create_environment(Name="during", **params)
        mwaa.update_environment(Name="before", MaxWorkers=4)

        restarted(live, "embedded_aws", aws)
        assert live.aws("s3").head_bucket(Bucket=params["SourceBucketArn"].rsplit(":", 1)[-1])
        for name in ("during", "before"):
            env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED", "UPDATE_FAILED"}, 90)
            assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        assert mwaa.get_environment(Name="before")["Environment"]["MaxWorkers"] == 4
        # Same port as before: clients and saved queue URLs keep working.
        assert live.aws("sqs").get_queue_url(QueueName="airflow-celery-" + _env_id(live, "during"))
        assert healthy(live)["parts"]["embedded_aws"] == {"state": "up", "restarts": 1}
        assert parts(live)["parts"]["embedded_aws"]["last_exit"] == "killed by SIGKILL"
    finally:
        live.stop()


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie that only waits for whoever adopted it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_sigkilled_supervisor_takes_every_child_with_it(tmp_path):
    """Only the supervisor is killed: its children (the embedded AWS among them, which it forks
    as it forks the workers) end by themselves, the embedded AWS after its final snapshot, and a
    server started at once on the same data dir waits for them, then has everything."""
    data_dir = tmp_path / "data"
    live = start_server(data_dir)
    try:
        mwaa = live.mwaa()
        params = make_prerequisites(live)
        mwaa.create_environment(Name="orphaned", **params)
        bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
        children = {name: part["pid"] for name, part in parts(live)["parts"].items()}
        assert {"embedded_aws", "background", "web_doors", "api-1"} <= set(children)
        assert all(children.values()), children
        os.kill(live.process.pid, signal.SIGKILL)
        live.process.wait()

        live = start_server(data_dir)  # at once: the data dir is still held by the children
        wait_until(
            lambda: all(gone(pid) for pid in children.values()),
            timeout=30,
            message=lambda: f"the old children to end: {children}",
        )
        assert set(children.values()).isdisjoint(p["pid"] for p in parts(live)["parts"].values())
        mwaa = live.mwaa()
        env = wait_for_status(mwaa, "orphaned", {"AVAILABLE", "CREATE_FAILED"})
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        live.aws("s3").head_bucket(Bucket=bucket)  # the embedded AWS's state came through
    finally:
        live.stop()


def test_sigkill_of_the_whole_tree_right_after_a_create_duplicates_nothing(tmp_path):
    data_dir = tmp_path / "data"
    live = start_server(data_dir)
    try:
        mwaa = live.mwaa()
        params = make_prerequisites(live)
        logging = {"SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"}}
        mwaa.create_environment(Name="cut", LoggingConfiguration=logging, **params)
        kill_tree(live)

        live = start_server(data_dir)
        mwaa = live.mwaa()
        env = wait_for_status(mwaa, "cut", {"AVAILABLE", "CREATE_FAILED"})
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        assert mwaa.list_environments()["Environments"] == ["cut"]
        groups = live.aws("logs").describe_log_groups(logGroupNamePrefix="airflow-cut-")
        # Task logs are on unless switched off, as in MWAA.
        assert [g["logGroupName"] for g in groups["logGroups"]] == [
            "airflow-cut-Scheduler",
            "airflow-cut-Task",
        ]
        queues = live.aws("sqs").list_queues(QueueNamePrefix="airflow-celery-")["QueueUrls"]
        assert len(queues) == 1
        config = live.aws("s3").get_bucket_notification_configuration(
            Bucket=params["SourceBucketArn"].rsplit(":", 1)[-1]
        )
        assert len(config.get("QueueConfigurations", [])) == 1
    finally:
        live.stop()


def test_a_second_server_on_a_data_dir_in_use_is_refused_and_changes_nothing(tmp_path):
    data_dir = tmp_path / "data"
    live = start_server(data_dir)
    try:
        watched = [
            data_dir / "iam" / "config-source.json",
            data_dir / "endpoints.json",
            data_dir / "admin.json",
            data_dir / "aws" / "config",
            data_dir / "aws" / "credentials",
            data_dir / "serve.pid",
        ]
        before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in watched}
        other_config = tmp_path / "other-iam.yaml"
        other_config.write_text("users: {}\n")
        second = subprocess.run(
            [
                *(sys.executable, "-m", "controlplane.cli", "serve", "--port", "0"),
                *("--data-dir", str(data_dir), "--iam-config", str(other_config)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"pid {live.process.pid}" in second.stderr
        assert "in use" in second.stderr
        assert "Traceback" not in second.stderr
        assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in watched} == before
        assert health(live)[0] == 200
    finally:
        live.stop()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_write_on_one_api_worker_is_read_on_another(tmp_path, request, store):
    extra = ["--api-workers", "2"]
    if store == "postgres":
        extra += ["--database-url", request.getfixturevalue("postgres_url")]
    live = start_server(tmp_path / "data", *extra)
    try:
        mwaa = live.mwaa()
        mwaa.meta.events.register("before-send.mwaa.*", _close_connection)
        params = make_prerequisites(live)
        arn = _create(mwaa, "ryw", params)
        crossings = 0
        for round_ in range(400):
            value = f"v{round_}"
            wrote = mwaa.tag_resource(ResourceArn=arn, Tags={"round": value})
            read = mwaa.list_tags_for_resource(ResourceArn=arn)
            assert read["Tags"]["round"] == value
            got = mwaa.get_environment(Name="ryw")
            assert got["Environment"]["Tags"]["round"] == value
            if _worker(wrote) != _worker(read) or _worker(wrote) != _worker(got):
                crossings += 1
                if crossings >= 20:
                    break
        assert crossings >= 20, "connections never landed on different workers"
        # A new environment created through one worker is found at once by the other.
        names = [f"ryw-{i}" for i in range(6)]
        for name in names:
            made = mwaa.create_environment(Name=name, **params)
            assert mwaa.get_environment(Name=name)["Environment"]["Name"] == name, _worker(made)
        assert set(names) <= set(mwaa.list_environments()["Environments"])
    finally:
        live.stop()


def _create(mwaa, name: str, params: dict) -> str:
    return mwaa.create_environment(Name=name, **params)["Arn"]


def _worker(response: dict) -> str:
    return response["ResponseMetadata"]["HTTPHeaders"][WORKER_HEADER]


def _close_connection(request, **_: object) -> None:
    # One connection per call, so the kernel hands successive calls to any API worker.
    request.headers["Connection"] = "close"


def _env_id(live: LiveServer, name: str) -> str:
    queue = live.mwaa().get_environment(Name=name)["Environment"]["CeleryExecutorQueue"]
    return queue.rsplit("airflow-celery-", 1)[-1]
