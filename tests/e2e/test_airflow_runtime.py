"""Every environment runs a real Airflow: created with boto3, its DAG runs a task that calls
the embedded AWS as the execution role, its components are supervised (a SIGKILLed scheduler
comes back; a component that keeps crashing makes the environment UNAVAILABLE until it
recovers), more workers restart nothing, delete leaves no process and no database, and a
SIGKILLed control plane leaves exactly one set of processes after its restart.

Slow (a real Airflow per environment), hence the `slow` marker; CI runs them all.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from environments.airflow.metadb.databases import MetadataDatabases
from environments.airflow.runtime import pidfiles
from tests.conftest import (
    PG_ADMIN_URL,
    LiveServer,
    postgres_available,
    start_server,
    wait_for_status,
    wait_gone,
)
from tests.e2e.airflow_support import prerequisites_for_airflow
from tests.waiting import wait_until

# A real Airflow starts in minutes on a busy 2-core machine; pytest-timeout defaults to 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE_WITHIN = 700.0
TASK_WITHIN = 240.0
# The embedded PostgreSQL (initdb on first start) and the server, on a busy machine.
SERVER_WITHIN = 300.0

# A DAG that runs at once and writes to S3 with a client built from nothing: the execution
# role's credentials and the embedded AWS's endpoint must come from the environment.
DAG = """
from datetime import datetime

import boto3
from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False)
def probe():
    @task
    def write():
        import os
        s3 = boto3.client("s3")
        who = boto3.client("sts").get_caller_identity()["Arn"]
        body = "|".join([who, os.environ["AIRFLOW_ENV_NAME"], os.environ["MWAA_AIRFLOW_COMPONENT"]])
        s3.put_object(Bucket="{bucket}", Key="results/{dag_id}.txt", Body=body.encode())

    write()


probe()
"""


@pytest.fixture(scope="module")
def airflow_server(airflow_live: LiveServer) -> LiveServer:
    # The session's server with the runtime (tests/e2e/conftest.py); this module's environments
    # are its own, because it kills, scales and deletes them.
    return airflow_live


def airdock(live: LiveServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cli", *args, "--data-dir", str(live.data_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def env_status(live: LiveServer, name: str) -> dict:
    done = airdock(live, "env", "status", name, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def put_dag(live: LiveServer, bucket: str, dag_id: str) -> None:
    body = DAG.format(dag_id=dag_id, bucket=bucket).encode()
    live.aws("s3").put_object(Bucket=bucket, Key=f"dags/{dag_id}.py", Body=body)


def result(live: LiveServer, bucket: str, dag_id: str) -> str | None:
    s3 = live.aws("s3")
    try:
        answer = s3.get_object(Bucket=bucket, Key=f"results/{dag_id}.txt")
    except s3.exceptions.NoSuchKey:
        return None
    return answer["Body"].read().decode()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def database_exists(live: LiveServer, name: str, server_url: str) -> bool:
    return MetadataDatabases(server_url, live.data_dir).exists(name)


@pytest.mark.parametrize("version", ["3.0.6", "2.10.3"])
def test_environment_runs_airflow_end_to_end(airflow_server: LiveServer, version: str) -> None:
    live = airflow_server
    tag = uuid.uuid4().hex[:8]
    params = prerequisites_for_airflow(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    role_name = params["ExecutionRoleArn"].rsplit("/", 1)[1]
    name = f"rt-{version.replace('.', '')}-{tag}"
    mwaa = live.mwaa()
    mwaa.create_environment(
        Name=name,
        AirflowVersion=version,
        AirflowConfigurationOptions={"core.dags_are_paused_at_creation": "False"},
        LoggingConfiguration={"SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"}},
        Schedulers=2,
        **params,
    )
    env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")

    status = env_status(live, name)
    assert status["status"] == "AVAILABLE"
    assert status["workers"] == 1
    kinds = {c["kind"] for c in status["components"].values()}
    web = "api-server" if version.startswith("3") else "webserver"
    assert {"scheduler", "dag-processor", "triggerer", web, "worker"} <= kinds
    assert all(c["state"] == "healthy" for c in status["components"].values()), status
    # The components keep their bytecode beside the environment's home (the venv is not theirs
    # to write): a worker's Celery modules, which no earlier step imports, are there.
    pycache = live.data_dir / "environments" / name / "home" / ".pycache"
    assert any(pycache.rglob("celery/worker/consumer/*.pyc")), "no bytecode cached by a worker"

    # A new DAG in S3 runs, and its task reaches the embedded AWS as the execution role.
    dag_id = f"probe_{tag}"
    put_dag(live, bucket, dag_id)
    body = wait_until(
        lambda: result(live, bucket, dag_id),
        timeout=TASK_WITHIN,
        interval=1.0,
        message=lambda: f"the task of {dag_id} to write to S3; status {env_status(live, name)}",
    )
    who, env_name, component = body.split("|")
    assert f"assumed-role/{role_name}/" in who
    assert env_name == name and component == "worker"

    # A SIGKILLed scheduler is restarted and the environment is healthy again.
    victim = status["components"]["scheduler-1"]["pid"]
    os.kill(victim, signal.SIGKILL)

    def scheduler_back() -> bool:
        now = env_status(live, name)["components"]["scheduler-1"]
        return (
            now["pid"] not in (None, victim)
            and now["restarts"] >= 1
            and (now["state"] == "healthy")
        )

    wait_until(scheduler_back, timeout=120, interval=0.5, message="scheduler-1 to come back")
    assert mwaa.get_environment(Name=name)["Environment"]["Status"] == "AVAILABLE"

    # Scheduler output reaches its CloudWatch group, and the task's log the Task group.
    logs = live.aws("logs")
    for group in (f"airflow-{name}-Scheduler", f"airflow-{name}-Task"):
        wait_until(
            lambda group=group: logs.filter_log_events(logGroupName=group, limit=5)["events"],
            timeout=60,
            message=f"log events in {group}",
        )

    if version == "3.0.6":  # once is enough: the supervision does not depend on the version
        a_crashing_component_makes_it_unavailable_until_it_recovers(live, name)
        more_workers_restart_nothing(live, name)
        a_killed_zygote_brings_every_process_back(live, name, bucket, f"{tag}_after")

    # Delete stops every process, the zygote included.
    pids = [c["pid"] for c in env_status(live, name)["components"].values() if c["pid"]]
    pids += zygotes(live.data_dir / "environments" / name)
    mwaa.delete_environment(Name=name)
    wait_gone(mwaa, name, timeout=120)
    assert not [pid for pid in pids if process_alive(pid)]


def runtime_state(live: LiveServer, name: str) -> dict:
    path = live.data_dir / "environments" / name / "state" / "runtime.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def group_leaders(workspace: Path) -> dict[int, str]:
    """Process-group leaders working in this environment's workspace: pid -> command.

    By their working directory: Airflow renames its processes (setproctitle), so the command
    line need not name the virtualenv."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "dag_check_child" in command:  # a DAG check, not a component
            continue
        if stat[0] != "Z" and int(stat[2]) == int(entry.name) and cwd.startswith(str(workspace)):
            found[int(entry.name)] = command
    return found


def zygotes(workspace: Path) -> list[int]:
    """The running zygotes of an environment's sets (runtime.zygote), by their pid files."""
    live = pidfiles.live_groups(workspace / "state" / "run")
    return [pid for name, pid in live.items() if name.split("~")[0] == "zygote"]


def control_plane_pids(root: int) -> list[int]:
    """`root` and its descendants that run Airdock's own code (not Airflow's)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"controlplane" in command or b"environments.emulator" in command:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def create_available(live: LiveServer, name: str, **extra: object) -> dict:
    params = prerequisites_for_airflow(live, uuid.uuid4().hex[:8])
    mwaa = live.mwaa()
    mwaa.create_environment(Name=name, Schedulers=2, **params, **extra)
    env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
    return env


def a_crashing_component_makes_it_unavailable_until_it_recovers(
    live: LiveServer, name: str
) -> None:
    mwaa = live.mwaa()
    killed: set[int] = set()

    def kill_triggerer_until_unavailable() -> bool:
        pid = runtime_state(live, name).get("components", {}).get("triggerer", {}).get("pid")
        if pid and pid not in killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        return mwaa.get_environment(Name=name)["Environment"]["Status"] == "UNAVAILABLE"

    wait_until(
        kill_triggerer_until_unavailable,
        timeout=180,
        interval=0.2,
        message="the environment to turn UNAVAILABLE while its triggerer keeps crashing",
    )
    assert "triggerer" in env_status(live, name)["reason"]
    assert len(killed) >= 2
    # Left alone, the triggerer comes back and so does the environment.
    wait_for_status(mwaa, name, {"AVAILABLE"}, timeout=180)
    assert env_status(live, name)["components"]["triggerer"]["restarts"] >= len(killed)


def a_killed_zygote_brings_every_process_back(
    live: LiveServer, name: str, bucket: str, tag: str
) -> None:
    """Every process is forked from the set's zygote and dies with it: all come back, forked
    from a new one, and DAGs run again."""
    workspace = live.data_dir / "environments" / name
    [zygote] = zygotes(workspace)
    status = env_status(live, name)
    before = {n: c["pid"] for n, c in status["components"].items()}
    assert all(parent_of(pid) == zygote for pid in before.values()), before
    assert status["zygote"]["pid"] == zygote
    assert all(c["forked"] for c in status["components"].values()), status
    os.kill(zygote, signal.SIGKILL)

    def all_back() -> bool:
        now = env_status(live, name)
        pids = {n: c["pid"] for n, c in now["components"].items()}
        return (
            now["status"] == "AVAILABLE"
            and set(pids) == set(before)
            and not set(pids.values()) & set(before.values())
            and all(c["state"] == "healthy" for c in now["components"].values())
        )

    wait_until(all_back, timeout=240, interval=0.5, message="every process to come back")
    [again] = zygotes(workspace)
    assert again != zygote
    wait_until(lambda: (env_status(live, name)["zygote"] or {}).get("pid") == again,
               timeout=30, message="env status to report the new zygote")  # fmt: skip
    shown = airdock(live, "env", "status", name).stdout
    assert re.search(rf"zygote: pid {again} \(started \d+ time\(s\)\); forked: \w", shown), shown
    now = env_status(live, name)["components"]
    assert all(parent_of(c["pid"]) == again for c in now.values()), now
    dag_id = f"probe_{tag}"
    put_dag(live, bucket, dag_id)
    wait_until(lambda: result(live, bucket, dag_id), timeout=TASK_WITHIN, interval=1.0,
               message=f"the task of {dag_id} after the zygote came back")  # fmt: skip


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def more_workers_restart_nothing(live: LiveServer, name: str) -> None:
    mwaa = live.mwaa()
    before = {n: c["pid"] for n, c in env_status(live, name)["components"].items()}
    mwaa.update_environment(Name=name, MinWorkers=2, MaxWorkers=3)
    wait_for_status(mwaa, name, {"AVAILABLE"}, timeout=120)
    wait_until(
        lambda: env_status(live, name)["workers"] == 2, timeout=120, message="a second worker"
    )
    after = {n: c["pid"] for n, c in env_status(live, name)["components"].items()}
    assert {n: after[n] for n in before} == before


@pytest.mark.postgres
def test_a_killed_control_plane_leaves_exactly_one_set_of_processes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    data_dir = tmp_path_factory.mktemp("airflow-crash") / "data"
    external = ("--airflow-database-url", PG_ADMIN_URL)
    live = start_server(data_dir, *external, airflow=True, timeout=SERVER_WITHIN)
    try:
        name = f"rt-kill-{uuid.uuid4().hex[:8]}"
        create_available(live, name)
        workspace = data_dir / "environments" / name
        before = group_leaders(workspace)
        # 2 schedulers, DAG processor, triggerer, API, worker, and the zygote they forked from.
        assert len(before) == 7, before
        assert len(zygotes(workspace)) == 1 and zygotes(workspace)[0] in before, before
        # A forked component shows its own command, not the zygote's.
        assert sum("airflow scheduler --skip-serve-logs" in c for c in before.values()) == 2, before

        # SIGKILL every process of the control plane at once (supervisor, background and API
        # workers, embedded AWS): nothing of it gets to stop Airflow, which runs on.
        for pid in control_plane_pids(live.process.pid):
            os.kill(pid, signal.SIGKILL)
        live.process.wait()
        assert group_leaders(workspace) == before

        live = start_server(data_dir, *external, airflow=True, timeout=SERVER_WITHIN)

        def one_fresh_set() -> bool:
            state = runtime_state(live, name)
            leaders = group_leaders(workspace)
            pids = {c["pid"] for c in state.get("components", {}).values()}
            return (
                state.get("healthy", False)
                and set(leaders) == pids | set(zygotes(workspace))
                and len(zygotes(workspace)) == 1
                and not (set(leaders) & set(before))
            )

        wait_until(one_fresh_set, timeout=180, interval=0.5, message="one fresh set of processes")
        assert len(group_leaders(workspace)) == 7
        mwaa = live.mwaa()
        assert mwaa.get_environment(Name=name)["Environment"]["Status"] == "AVAILABLE"
        mwaa.delete_environment(Name=name)
        assert database_exists(live, name, PG_ADMIN_URL)
        wait_gone(mwaa, name, timeout=120)
        assert group_leaders(workspace) == {}
        assert not database_exists(live, name, PG_ADMIN_URL)
    finally:
        live.stop()
