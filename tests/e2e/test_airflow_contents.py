"""An environment with its real Airflow virtualenv: requirements, DAG checks, and a failing
requirements update that rolls back. Uses a shared uv cache, so only a machine's first run
downloads Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT, start_server, wait_for_status
from tests.e2e.airflow_support import prerequisites_for_airflow
from tests.waiting import wait_until

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


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("airflow") / "data", airflow=True, timeout=300)
    yield live
    live.stop()


def test_requirements_dags_and_a_rolled_back_update(airflow_server):
    live = airflow_server
    mwaa, s3, logs = live.mwaa(), live.aws("s3"), live.aws("logs")
    params = prerequisites_for_airflow(live, uuid.uuid4().hex[:8])
    bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
    s3.put_object(Bucket=bucket, Key="dags/hello.py", Body=GOOD_DAG)
    s3.put_object(Bucket=bucket, Key="dags/broken.py", Body=BROKEN_DAG)
    good = s3.put_object(Bucket=bucket, Key="requirements.txt", Body=b"pyjokes==0.8.3\n")[
        "VersionId"
    ]
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
        LoggingConfiguration=logging,
    )
    wait_for_status(mwaa, "flow", {"AVAILABLE"}, timeout=900)
    venv = live.data_dir / "environments" / "flow" / "venv"
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow, pyjokes; print(airflow.__version__)"],
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
        [str(venv / "bin" / "python"), "-c", "import pyjokes"], capture_output=True
    )
    assert still.returncode == 0  # the previous virtualenv stays in effect
