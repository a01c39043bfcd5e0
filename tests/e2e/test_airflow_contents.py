"""An environment with its real Airflow virtualenv: requirements, DAG checks, and a failing
requirements update that rolls back. Uses a shared uv cache, so only a machine's first run
downloads Airflow."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest

from environments.airflow.metadb.databases import MetadataDatabases
from tests.conftest import ROOT, start_server, wait_for_status
from tests.e2e.airflow_support import embedded_admin_url, prerequisites_for_airflow
from tests.waiting import wait_until
from tests.wheels import write_wheel

# Each environment here runs a real Airflow, which starts in minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

GOOD_DAG = b"""
from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("hello_airdock", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="start")
"""
BROKEN_DAG = b"from airflow import DAG\nimport module_that_does_not_exist\n"


# A requirements.txt package whose .pth runs at every start of the venv's Python, and notes
# where it ran: the code a hostile user would ship.
PROBE = """
import os
try:
    with open(os.path.join(os.path.expanduser("~"), "probe-ran.txt"), "a") as notes:
        notes.write(f"{os.getuid()} {os.getcwd()}\\n")
except OSError:
    pass
"""


def probe_plugins(folder: Path) -> bytes:
    wheel = write_wheel(folder / "wheels", "airdock_probe", "1.0", PROBE,
                        extra={"airdock_probe.pth": "import airdock_probe\n"})  # fmt: skip
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as plugins:
        plugins.write(wheel, f"wheels/{wheel.name}")
    return archive.getvalue()


def assert_probe_stayed_in_the_environment(live, name: str) -> None:
    """The probe ran in the environment's processes, and its venv (not Airdock's lock alone)
    got no schema template: nothing was built from it as Airdock, so its database was
    migrated by its own Airflow (environments.airflow.runtime.templates)."""
    workspace = live.data_dir / "environments" / name
    assert list(workspace.rglob("probe-ran.txt")), "the probe never ran: the test proves nothing"
    venv = (workspace / "venv").resolve()
    assert not (live.data_dir / "templates" / venv.name).exists()
    assert not list((live.data_dir / "templates").rglob("probe-ran.txt"))
    admin = embedded_admin_url(live.data_dir)
    template = MetadataDatabases(admin, live.data_dir).template_name(venv.name)
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
        assert found.fetchone() is None


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("airflow") / "data", airflow=True, timeout=300)
    yield live
    live.stop()


def test_requirements_dags_and_a_rolled_back_update(airflow_server, tmp_path):
    live = airflow_server
    mwaa, s3, logs = live.mwaa(), live.aws("s3"), live.aws("logs")
    params = prerequisites_for_airflow(live, uuid.uuid4().hex[:8])
    bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
    s3.put_object(Bucket=bucket, Key="dags/hello.py", Body=GOOD_DAG)
    s3.put_object(Bucket=bucket, Key="dags/broken.py", Body=BROKEN_DAG)
    plugins = s3.put_object(Bucket=bucket, Key="plugins.zip", Body=probe_plugins(tmp_path))
    requirements = (
        b"--find-links /usr/local/airflow/plugins/wheels\npyjokes==0.8.3\nairdock-probe==1.0\n"
    )
    good = s3.put_object(Bucket=bucket, Key="requirements.txt", Body=requirements)["VersionId"]
    logging = {
        "DagProcessingLogs": {"Enabled": True, "LogLevel": "INFO"},
        "SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"},
    }
    mwaa.create_environment(
        Name="flow",
        **params,
        AirflowVersion="3.0.6",
        RequirementsS3Path="requirements.txt",
        RequirementsS3ObjectVersion=good,
        PluginsS3Path="plugins.zip",
        PluginsS3ObjectVersion=plugins["VersionId"],
        LoggingConfiguration=logging,
    )
    wait_for_status(mwaa, "flow", {"AVAILABLE"}, timeout=900)
    assert_probe_stayed_in_the_environment(live, "flow")
    venv = live.data_dir / "environments" / "flow" / "venv"
    own_home = {**os.environ, "HOME": str(tmp_path)}  # where the probe's notes go from here
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow, pyjokes; print(airflow.__version__)"],
        env=own_home,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "3.0.6", probe.stderr

    report_file = live.data_dir / "environments" / "flow" / "state" / "dag-report.json"
    # DAGs are parsed in the background after the environment is up.
    wait_until(report_file.exists, timeout=120, interval=0.2, message="the DAG report of flow")
    shown = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "env", "dags", "flow", "--json",
         "--data-dir", str(live.data_dir)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    report = {f["file"]: f for f in json.loads(shown.stdout)["files"]}
    table = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "env", "dags", "flow",
         "--data-dir", str(live.data_dir)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert "hello_airdock" in table.stdout and "broken.py" in table.stdout
    # The table shows what went wrong (the error's last line), not "Traceback ...".
    broken_row = next(line for line in table.stdout.splitlines() if "broken.py" in line)
    assert "module_that_does_not_exist" in broken_row and "Traceback" not in broken_row
    assert report["hello.py"]["dag_ids"] == ["hello_airdock"] and not report["hello.py"]["errors"]
    assert "module_that_does_not_exist" in " ".join(report["broken.py"]["errors"])
    streams = logs.describe_log_streams(logGroupName="airflow-flow-Scheduler")["logStreams"]
    assert any(s["logStreamName"].startswith("requirements_install_") for s in streams)
    errors = logs.get_log_events(
        logGroupName="airflow-flow-DAGProcessing", logStreamName="dag_processing_errors"
    )["events"]
    assert any("broken.py" in e["message"] for e in errors)

    bad = s3.put_object(
        Bucket=bucket, Key="requirements.txt", Body=b"no-such-package-airdock-zzz==9.9\n"
    )["VersionId"]
    mwaa.update_environment(Name="flow", RequirementsS3ObjectVersion=bad)
    env = wait_for_status(mwaa, "flow", {"UPDATE_FAILED"}, timeout=600)
    assert env["RequirementsS3ObjectVersion"] == good
    assert env["LastUpdate"]["Error"]["ErrorCode"] == "REQUIREMENTS_INSTALL_FAILED"
    assert "requirements_install_" in env["LastUpdate"]["Error"]["ErrorMessage"]
    still = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pyjokes"], env=own_home, capture_output=True
    )
    assert still.returncode == 0  # the previous virtualenv stays in effect
