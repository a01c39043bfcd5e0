"""Workers on other hosts: the join file, the heartbeat rows the control plane counts, and
`airdock worker` refusing bad input before it touches anything."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from controlplane.cli import main
from environments.airflow.runtime import remote_registry
from environments.airflow.runtime.join import FIELDS, JoinError, read_join, write_join
from environments.airflow.runtime.remote_registry import RemoteWorkers
from environments.fleet.setup import WorkerOptions, WorkerSetup, WorkerSetupError
from environments.fleet.updates import AirflowVersionChanged, UpdateWatch, built_from


def bundle(**overrides: str) -> dict:
    return {**{field: f"{field}-value" for field in FIELDS}, "environment": "demo", **overrides}


def test_join_file_is_private_and_complete(tmp_path: Path) -> None:
    write_join(tmp_path, bundle())
    path = tmp_path / "worker-join.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_join(path)["environment"] == "demo"
    path.write_text(json.dumps(bundle(fernet_key="")))
    with pytest.raises(JoinError, match="lacks fernet_key"):
        read_join(path)
    path.write_text("[1, 2]")
    with pytest.raises(JoinError, match="lacks"):
        read_join(path)
    with pytest.raises(JoinError, match="cannot read"):
        read_join(tmp_path / "missing.json")


@pytest.mark.postgres
def test_heartbeats_are_counted_while_fresh(postgres_url: str, monkeypatch) -> None:
    url = postgres_url.replace("postgresql+psycopg", "postgresql+psycopg2")  # as Airflow's
    assert remote_registry.fresh(url) == []  # no table yet
    remote_registry.beat(url, "host-a", workers=2, ready=1, concurrency=5, pids=[10, 11])
    remote_registry.beat(url, "host-b", workers=1, ready=1, concurrency=5, pids=[12])
    remote_registry.beat(url, "host-a", workers=2, ready=2, concurrency=5, pids=[10, 11])
    hosts = remote_registry.fresh(url)
    assert [(h["host"], h["ready"]) for h in hosts] == [("host-a", 2), ("host-b", 1)]
    json.dumps(hosts)  # goes into runtime.json as it is
    remote_registry.leave(url, "host-b")
    assert [h["host"] for h in remote_registry.fresh(url)] == ["host-a"]
    monkeypatch.setattr(remote_registry, "FRESH_SECONDS", 0.5)
    time.sleep(1.0)
    assert remote_registry.fresh(url) == []  # silent hosts stop counting


def test_an_unreachable_database_counts_no_remote_worker() -> None:
    url = "postgresql+psycopg2://nobody:x@127.0.0.1:1/none"
    assert RemoteWorkers().of("demo", url) == []


def test_airdock_worker_refuses_bad_input(tmp_path: Path, capsys) -> None:
    def airdock(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    join = tmp_path / "join.json"
    done = airdock("worker", "demo", "--join", str(join))
    assert done.returncode == 2 and "cannot read the join file" in done.stderr
    write_join(tmp_path, bundle(environment="other"))
    done = airdock("worker", "demo", "--join", str(tmp_path / "worker-join.json"))
    assert done.returncode == 2 and "is for other, not demo" in done.stderr
    done = airdock("worker", "demo", "--join", str(join), "--workers", "0")
    assert done.returncode == 2 and "at least 1" in done.stderr
    write_join(tmp_path, bundle())
    for bad in ("0", "-3", "nan"):
        done = airdock("worker", "demo", "--join", str(tmp_path / "worker-join.json"),
                       "--sync-seconds", bad)  # fmt: skip
        assert done.returncode == 2 and "--sync-seconds must be more than 0" in done.stderr
    done = airdock("worker-join", "demo", "--data-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "is the environment's Airflow running here?" in done.stderr


def environment(**changes: object) -> dict:
    base = {
        "Status": "AVAILABLE",
        "AirflowVersion": "3.0.6",
        "EnvironmentClass": "mw1.small",
        "RequirementsS3Path": "requirements.txt",
        "RequirementsS3ObjectVersion": "v1",
        "MinWorkers": 1,
        "MaxWorkers": 2,
        "AirflowConfigurationOptions": {"core.parallelism": "8"},
    }
    return {**base, **changes}


def test_a_worker_host_follows_finished_updates_of_what_its_workers_are_built_from() -> None:
    watch = UpdateWatch(environment())
    assert watch.changes(environment()) == []
    assert watch.changes(environment(MaxWorkers=5, MinWorkers=2)) == []  # its own worker count
    new_requirements = environment(RequirementsS3ObjectVersion="v2")
    # Not while the update is under way: the host waits for the environment to take it.
    assert watch.changes({**new_requirements, "Status": "UPDATING"}) == []
    assert watch.changes(new_requirements) == ["RequirementsS3ObjectVersion"]
    options = environment(AirflowConfigurationOptions={"core.parallelism": "9"})
    assert watch.changes(options) == ["AirflowConfigurationOptions"]
    # A rebuild that failed is not tried again until the environment changes once more.
    watch.refused = built_from(new_requirements)
    assert watch.changes(new_requirements) == []
    assert watch.changes(environment(RequirementsS3ObjectVersion="v3")) != []


def test_a_new_airflow_version_stops_a_worker_host() -> None:
    watch = UpdateWatch(environment())
    with pytest.raises(AirflowVersionChanged, match=r"now runs Airflow 2\.10\.3"):
        watch.changes(environment(AirflowVersion="2.10.3"))
    assert watch.changes(environment(AirflowVersion="2.10.3", Status="UPDATING")) == []


STARTUP_SCRIPTS = {
    "fails": b"echo preparing the worker\necho no such tool >&2\nexit 3\n",
    "exports": b"export WORKER_MARK=joined\nexport PATH=/opt/tool/bin:$PATH\n",
}


def test_a_worker_host_runs_the_startup_script_and_a_failing_one_stops_the_join(
    server, prerequisites: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`airdock worker` runs the environment's startup script, at its object version, before
    its workers start: what it exports reaches them, and a script that fails stops the join
    with its output kept on the host."""
    access, secret = server.admin_key()
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    bucket = prerequisites["SourceBucketArn"].split(":::", 1)[1]
    s3 = server.aws("s3")
    versions = {
        kind: s3.put_object(Bucket=bucket, Key="startup.sh", Body=body)["VersionId"]
        for kind, body in STARTUP_SCRIPTS.items()
    }
    setup = WorkerSetup(
        WorkerOptions(
            name="startup-demo",
            join=bundle(env_id="e-startup"),
            work_dir=tmp_path,
            uv_cache=tmp_path / "uv",
            region="us-east-1",
            aws_endpoint=server.aws_url,
        )
    )
    env = {
        "SourceBucketArn": prerequisites["SourceBucketArn"],
        "ExecutionRoleArn": prerequisites["ExecutionRoleArn"],
        "AirflowVersion": "3.0.6",
        "StartupScriptS3Path": "startup.sh",
    }
    credentials = setup.credentials(env)

    env["StartupScriptS3ObjectVersion"] = versions["exports"]
    exported = setup.startup_exports(env, credentials)
    assert exported["WORKER_MARK"] == "joined"
    assert exported["PATH"].startswith("/opt/tool/bin:")

    # The older version fails, although the newest object succeeds: the version is what runs.
    env["StartupScriptS3ObjectVersion"] = versions["fails"]
    with pytest.raises(WorkerSetupError, match=r"startup\.sh") as failure:
        setup.startup_exports(env, credentials)
    log = setup.workspace.state / "logs" / "startup-script.log"
    assert str(log) in str(failure.value)
    kept = log.read_text()
    assert "preparing the worker" in kept and "no such tool" in kept
