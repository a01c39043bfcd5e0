"""User code never runs with the server's rights: a startup script and a DAG (parsed by the
DAG check) try, as an attacker would, to read Airdock's secrets and another environment's
workspace, to find the server's variables, and to write outside their workspace. Every attempt
is refused, and the environment still ends with a clear outcome."""

from __future__ import annotations

import json
import os
import stat

import pytest

from environments.airflow import sandbox
from environments.plumbing import os_users
from environments.workspace import Workspace
from tests.conftest import ROOT, make_prerequisites, start_server, wait_for_status, wait_gone
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.skipif(
        sandbox.mode() == sandbox.NONE,
        reason="neither root (accounts) nor a working bubblewrap: user code is not confined here",
    ),
    # Two real Airflow environments, each waited on for up to 600 s.
    pytest.mark.slow,
    pytest.mark.timeout(1500),
]


def targets(data_dir) -> tuple[list[str], list[str]]:
    """What an attacker would read, and where it would write."""
    reads = [
        data_dir / "admin.json",
        data_dir / "iam" / "keystore.key",
        data_dir / "airdock.db",
        data_dir / "aws" / "credentials",
        data_dir / "metadb.key",
        data_dir / "postgres" / "superuser",
        data_dir / "environments" / "victim" / "dags" / "secret_dag.py",
        data_dir / "environments" / "victim" / "state" / "startup-env.json",
    ]
    writes = [
        data_dir / "pwned",
        data_dir / "environments" / "victim" / "dags" / "pwned.py",
        data_dir / "environments" / "victim" / "home" / "pwned",
        ROOT / "pwned",
        "/etc/pwned",
    ]
    return [str(p) for p in reads], [str(p) for p in writes]


STARTUP = """
for f in {reads}; do
  if head -c1 "$f" >/dev/null 2>&1; then echo "LEAK read $f"; else echo "DENIED read $f"; fi
done
for f in {writes}; do
  if (echo x > "$f") 2>/dev/null; then echo "LEAK write $f"; else echo "DENIED write $f"; fi
done
if ls {victim} >/dev/null 2>&1; then echo "LEAK list {victim}"; else echo "DENIED list"; fi
env | grep -q '^AIRDOCK_' && echo "LEAK variables" || echo "DENIED variables"
echo "whoami=$(id -un)"
"""

DAG = """
import os
from datetime import datetime
from airflow import DAG

leaks = []
for path in {reads!r}:
    try:
        open(path, "rb").read(1)
        leaks.append("read " + path)
    except OSError:
        pass
for path in {writes!r}:
    try:
        with open(path, "w") as handle:
            handle.write("x")
        leaks.append("write " + path)
    except OSError:
        pass
leaks += ["variable " + k for k in os.environ if k.startswith(("AIRDOCK_", "AWS_SECRET"))]
if leaks:
    raise RuntimeError("LEAKED: " + ", ".join(leaks))
with DAG("all_denied", start_date=datetime(2024, 1, 1), schedule=None):
    pass
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("sandbox") / "data", airflow=True)
    yield server
    server.stop()


def test_startup_script_and_dag_cannot_reach_secrets_or_other_workspaces(live):
    mwaa, s3, logs = live.mwaa(), live.aws("s3"), live.aws("logs")
    params = make_prerequisites(live)
    bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
    logging = {
        "SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"},
        "DagProcessingLogs": {"Enabled": True, "LogLevel": "INFO"},
    }
    # The victim: an environment with a DAG of its own.
    s3.put_object(Bucket=bucket, Key="victim/secret_dag.py", Body=b"# secret\n")
    mwaa.create_environment(Name="victim", **{**params, "DagS3Path": "victim"})
    wait_for_status(mwaa, "victim", {"AVAILABLE"}, timeout=600)

    reads, writes = targets(live.data_dir)
    victim = str(live.data_dir / "environments" / "victim")
    script = STARTUP.format(reads=" ".join(reads), writes=" ".join(writes), victim=victim)
    version = s3.put_object(Bucket=bucket, Key="attack/startup.sh", Body=script.encode())
    s3.put_object(
        Bucket=bucket, Key="attack/dags/probe.py", Body=DAG.format(reads=reads, writes=writes)
    )
    mwaa.create_environment(
        Name="attacker",
        **{**params, "DagS3Path": "attack/dags"},
        StartupScriptS3Path="attack/startup.sh",
        StartupScriptS3ObjectVersion=version["VersionId"],
        LoggingConfiguration=logging,
    )
    env = wait_for_status(mwaa, "attacker", {"AVAILABLE", "CREATE_FAILED"}, timeout=600)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")

    lines = [
        event["message"]
        for event in logs.get_log_events(
            logGroupName="airflow-attacker-Scheduler",
            logStreamName="startup_script_execution_scheduler",
        )["events"]
    ]
    assert not [line for line in lines if "LEAK" in line], lines
    assert sum("DENIED" in line for line in lines) == len(reads) + len(writes) + 2, lines
    assert "whoami=root" not in lines

    report_path = live.data_dir / "environments" / "attacker" / "state" / "dag-report.json"
    report = wait_until(
        lambda: report_path.exists() and json.loads(report_path.read_text()),
        timeout=120,
        message="the DAG check of the attacker's DAG",
    )
    probe = [entry for entry in report["files"] if entry["file"] == "probe.py"]
    assert probe and probe[0]["dag_ids"] == ["all_denied"], report

    for path in writes:
        assert not os.path.exists(path), f"{path} was written"

    # Delete takes the environment's account (and its database) away with the workspace.
    account = sandbox.account_name(Workspace.for_environment(live.data_dir, "attacker"))
    if sandbox.mode() == sandbox.ACCOUNTS:
        assert os_users.lookup(account) is not None
    mwaa.delete_environment(Name="attacker")
    wait_gone(mwaa, "attacker", timeout=120)
    assert os_users.lookup(account) is None


def test_secrets_and_data_dir_modes(live):
    data_dir = live.data_dir
    for secret in ("admin.json", "airdock.db", "metadb.key", "iam/keystore.key"):
        assert stat.S_IMODE((data_dir / secret).stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((data_dir / "iam").stat().st_mode) == 0o700
    expected = 0o711 if sandbox.mode() == sandbox.ACCOUNTS else 0o700
    assert stat.S_IMODE(data_dir.stat().st_mode) == expected


def test_nothing_in_the_data_dir_is_readable_by_other_accounts(live):
    """Other local accounts may at most pass through a folder (to reach a workspace or the
    embedded PostgreSQL's socket); no file or listing of the server's is open to them."""
    for path in [live.data_dir, *live.data_dir.rglob("*")]:
        if "environments" in path.relative_to(live.data_dir).parts[:1] and path.is_file():
            continue  # an environment's own files belong to its account (test above)
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue  # a running PostgreSQL replaces files such as pg_internal.init at will
        if stat.S_ISLNK(mode):
            continue
        others = stat.S_IMODE(mode) & 0o007
        allowed = 0o001 if stat.S_ISDIR(mode) else 0
        assert others & ~allowed == 0, f"{path}: {oct(stat.S_IMODE(mode))}"
