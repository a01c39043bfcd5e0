"""Environment contents through the real path: boto3 uploads to the embedded AWS, the server
syncs DAGs, extracts plugins and runs the startup script into the environment's workspace."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile

import pytest

from tests.conftest import ROOT, wait_for_status, wait_gone
from tests.waiting import wait_until


def _bucket(params) -> str:
    return params()["SourceBucketArn"].rsplit(":", 1)[-1]


def _synced(predicate, what: str, timeout: float = 15.0) -> None:
    # A short interval: test_event_pickup_is_fast times how soon the file shows up.
    wait_until(predicate, timeout=timeout, interval=0.02, message=what)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def dag_env(server, params, mwaa, env_name):
    """An AVAILABLE environment whose DagS3Path is its own prefix in the shared bucket."""
    s3 = server.aws("s3")
    bucket = _bucket(params)
    prefix = f"{env_name}/dags"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/first.py", Body=b"# first\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/team/etl/job.py", Body=b"# job\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/team/sql/query.sql", Body=b"select 1\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/../escape.py", Body=b"# evil\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}//double.py", Body=b"# evil\n")
    mwaa.create_environment(Name=env_name, **params(DagS3Path=prefix))
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    return env_name, bucket, prefix, server.data_dir / "environments" / env_name


def test_dags_mirror_the_prefix(server, mwaa, dag_env):
    name, bucket, prefix, workspace = dag_env
    dags = workspace / "dags"
    assert (dags / "first.py").read_text() == "# first\n"
    assert (dags / "team" / "etl" / "job.py").exists()
    assert (dags / "team" / "sql" / "query.sql").exists()  # non-.py files come along
    assert not (workspace / "escape.py").exists()
    assert not any(p.name == "double.py" for p in workspace.rglob("*"))
    assert (workspace / "plugins").is_dir() and (workspace / "home").is_dir()

    s3 = server.aws("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/team/etl/job.py", Body=b"# job v2\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/new.py", Body=b"# new\n")
    _synced(lambda: (dags / "new.py").exists(), "new.py to be synced")
    _synced(
        lambda: (dags / "team" / "etl" / "job.py").read_text() == "# job v2\n",
        "the new version of team/etl/job.py to be synced",
    )
    s3.delete_object(Bucket=bucket, Key=f"{prefix}/team/sql/query.sql")
    _synced(lambda: not (dags / "team" / "sql").exists(), "team/sql to be removed")
    assert not [p for p in dags.rglob(".airdock-*")]

    mwaa.delete_environment(Name=name)
    wait_gone(mwaa, name)
    assert not workspace.exists()
    entries = s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
    prefixes = [rule["Value"] for e in entries for rule in e["Filter"]["Key"]["FilterRules"]]
    assert f"{prefix}/" not in prefixes  # our notification entry went with the environment


def test_event_pickup_is_fast(server, dag_env):
    _, bucket, prefix, workspace = dag_env
    s3 = server.aws("s3")
    delays = []
    for i in range(5):
        start = time.monotonic()
        s3.put_object(Bucket=bucket, Key=f"{prefix}/fast_{i}.py", Body=b"# fast\n")
        _synced(
            lambda i=i: (workspace / "dags" / f"fast_{i}.py").exists(),
            f"fast_{i}.py to be synced",
            timeout=10,
        )
        delays.append(time.monotonic() - start)
    # Generous bound: the polling fallback alone would take up to its 5 s interval here.
    assert sorted(delays)[2] < 3.0, delays


def test_env_sync_command(server, dag_env):
    name, bucket, prefix, workspace = dag_env
    server.aws("s3").put_object(Bucket=bucket, Key=f"{prefix}/by_hand.py", Body=b"# hand\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane.cli",
            "env",
            "sync",
            name,
            "--data-dir",
            str(server.data_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (workspace / "dags" / "by_hand.py").exists()
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane.cli",
            "env",
            "sync",
            "nope",
            "--data-dir",
            str(server.data_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "not found" in missing.stdout


def test_plugins_zip_is_extracted_and_a_hostile_one_refused(server, params, mwaa, env_name):
    s3 = server.aws("s3")
    bucket = _bucket(params)
    good = s3.put_object(
        Bucket=bucket, Key=f"{env_name}/plugins.zip", Body=_zip({"ops/op.py": b"X = 1\n"})
    )["VersionId"]
    mwaa.create_environment(
        Name=env_name,
        **params(PluginsS3Path=f"{env_name}/plugins.zip", PluginsS3ObjectVersion=good),
    )
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    plugins = server.data_dir / "environments" / env_name / "plugins"
    assert (plugins / "ops" / "op.py").read_text() == "X = 1\n"

    evil = s3.put_object(
        Bucket=bucket, Key=f"{env_name}/plugins.zip", Body=_zip({"../../pwned.py": b"x"})
    )["VersionId"]
    mwaa.update_environment(Name=env_name, PluginsS3ObjectVersion=evil)
    env = wait_for_status(mwaa, env_name, {"UPDATE_FAILED"})
    assert "outside the plugins folder" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert env["PluginsS3ObjectVersion"] == good
    assert (plugins / "ops" / "op.py").exists()
    assert not list(server.data_dir.rglob("pwned.py"))


def test_a_plugins_zip_using_a_path_as_file_and_folder_ends_update_failed(
    server, params, mwaa, env_name
):
    """Such an archive once left the environment UPDATING for ever; now the update fails,
    the last good plugins stay, and the environment can be updated and deleted again."""
    s3 = server.aws("s3")
    bucket, key = _bucket(params), f"{env_name}/plugins.zip"
    good = s3.put_object(Bucket=bucket, Key=key, Body=_zip({"ops/op.py": b"X = 1\n"}))
    mwaa.create_environment(
        Name=env_name, **params(PluginsS3Path=key, PluginsS3ObjectVersion=good["VersionId"])
    )
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    clash = s3.put_object(Bucket=bucket, Key=key, Body=_zip({"a": b"x", "a/b.py": b"y"}))
    mwaa.update_environment(Name=env_name, PluginsS3ObjectVersion=clash["VersionId"])
    env = wait_for_status(mwaa, env_name, {"UPDATE_FAILED"})
    error = env["LastUpdate"]["Error"]
    assert error["ErrorCode"] == "INCORRECT_CONFIGURATION"
    assert "'a' as a folder" in error["ErrorMessage"]
    assert env["PluginsS3ObjectVersion"] == good["VersionId"]
    plugins = server.data_dir / "environments" / env_name / "plugins"
    assert (plugins / "ops" / "op.py").read_text() == "X = 1\n"
    mwaa.update_environment(Name=env_name, MaxWorkers=3)
    assert wait_for_status(mwaa, env_name, {"AVAILABLE"})["MaxWorkers"] == 3
    mwaa.delete_environment(Name=env_name)
    wait_gone(mwaa, env_name)


def test_startup_script_runs_with_mwaa_variables(server, params, mwaa, env_name):
    s3 = server.aws("s3")
    bucket = _bucket(params)
    script = (
        b'echo "component=$MWAA_AIRFLOW_COMPONENT env=$AIRFLOW_ENV_NAME"\nexport TEAM_SETTING=on\n'
    )
    version = s3.put_object(Bucket=bucket, Key=f"{env_name}/startup.sh", Body=script)["VersionId"]
    logging = {"SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"}}
    mwaa.create_environment(
        Name=env_name,
        **params(
            StartupScriptS3Path=f"{env_name}/startup.sh",
            StartupScriptS3ObjectVersion=version,
            LoggingConfiguration=logging,
        ),
    )
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    state = server.data_dir / "environments" / env_name / "state" / "startup-env.json"
    assert '"TEAM_SETTING": "on"' in state.read_text()
    events = server.aws("logs").get_log_events(
        logGroupName=f"airflow-{env_name}-Scheduler",
        logStreamName="startup_script_execution_worker",
    )["events"]
    assert any(f"component=worker env={env_name}" in e["message"] for e in events)


def test_failing_startup_script_fails_the_create(server, params, mwaa, env_name):
    s3 = server.aws("s3")
    bucket = _bucket(params)
    version = s3.put_object(
        Bucket=bucket, Key=f"{env_name}/startup.sh", Body=b"echo broken >&2\nexit 7\n"
    )["VersionId"]
    mwaa.create_environment(
        Name=env_name,
        **params(
            StartupScriptS3Path=f"{env_name}/startup.sh", StartupScriptS3ObjectVersion=version
        ),
    )
    env = wait_for_status(mwaa, env_name, {"CREATE_FAILED"})
    assert env["LastUpdate"]["Error"]["ErrorCode"] == "STARTUP_SCRIPT_FAILED"
    assert "exited with code 7" in env["LastUpdate"]["Error"]["ErrorMessage"]
