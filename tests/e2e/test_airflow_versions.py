"""Every other Airflow version in the lock set starts and runs a DAG.

3.0.6 and 2.10.3 run end to end in the default suite. The other versions each build a
virtualenv of their own (a download on a machine's first run) and take minutes, so this module
is optional: marked `versions`, it runs only when asked for, with `pytest -m versions` or
AIRDOCK_TEST_VERSIONS=1. One environment at a time, each deleted before the next starts.
"""

from __future__ import annotations

import uuid

import pytest

from environments.airflow.locks import supported_versions
from tests.conftest import LiveServer, wait_for_status, wait_gone
from tests.e2e.airflow_support import prerequisites_for_airflow
from tests.waiting import wait_until

IN_THE_DEFAULT_SUITE = {"3.0.6", "2.10.3"}
OTHER_VERSIONS = [v for v in supported_versions() if v not in IN_THE_DEFAULT_SUITE]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.versions,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        "'versions' not in (config.getoption('markexpr') or '') "
        "and not os.environ.get('AIRDOCK_TEST_VERSIONS')",
        reason="optional: every other Airflow version; run with -m versions",
    ),
]

AVAILABLE_WITHIN = 1200.0  # a cold cache downloads and builds the version's virtualenv
TASK_WITHIN = 300.0

DAG = """
from datetime import datetime

import boto3
from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False)
def probe():
    @task
    def write():
        import airflow
        boto3.client("s3").put_object(
            Bucket="{bucket}", Key="results/{dag_id}.txt", Body=airflow.__version__.encode()
        )

    write()


probe()
"""


def result(live: LiveServer, bucket: str, key: str) -> str | None:
    s3 = live.aws("s3")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        return None


@pytest.mark.parametrize("version", OTHER_VERSIONS)
def test_version_starts_and_runs_a_dag(airflow_live: LiveServer, version: str) -> None:
    live, mwaa = airflow_live, airflow_live.mwaa()
    tag = uuid.uuid4().hex[:8]
    params = prerequisites_for_airflow(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    dag_id = f"probe_{tag}"
    live.aws("s3").put_object(
        Bucket=bucket,
        Key=f"dags/{dag_id}.py",
        Body=DAG.format(dag_id=dag_id, bucket=bucket).encode(),
    )
    name = f"v{version.replace('.', '')}-{tag}"
    mwaa.create_environment(
        Name=name,
        AirflowVersion=version,
        AirflowConfigurationOptions={"core.dags_are_paused_at_creation": "False"},
        **params,
    )
    try:
        env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, AVAILABLE_WITHIN)
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        ran = wait_until(
            lambda: result(live, bucket, f"results/{dag_id}.txt"),
            timeout=TASK_WITHIN,
            interval=1.0,
            message=f"the DAG of the {version} environment to run",
        )
        assert ran == version
    finally:
        mwaa.delete_environment(Name=name)
        wait_gone(mwaa, name, timeout=180)


def test_upgrades_in_place_migrate_the_database(airflow_live: LiveServer) -> None:
    """2.10.3 to 2.11.0 (a minor upgrade) and on to 3.0.6 (the one major door MWAA opens):
    each migrates the metadata database, and a DAG runs on the new version."""
    live, mwaa = airflow_live, airflow_live.mwaa()
    tag = uuid.uuid4().hex[:8]
    params = prerequisites_for_airflow(live, tag)
    bucket = params["SourceBucketArn"].split(":::")[1]
    name = f"upgrade-{tag}"
    mwaa.create_environment(
        Name=name,
        AirflowVersion="2.10.3",
        AirflowConfigurationOptions={"core.dags_are_paused_at_creation": "False"},
        **params,
    )
    try:
        env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, AVAILABLE_WITHIN)
        assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
        for version in ("2.11.0", "3.0.6"):
            mwaa.update_environment(Name=name, AirflowVersion=version)
            env = wait_for_status(
                mwaa, name, {"AVAILABLE", "UPDATE_FAILED", "UNAVAILABLE"}, AVAILABLE_WITHIN
            )
            assert env["Status"] == "AVAILABLE", env["LastUpdate"]
            assert env["LastUpdate"]["Status"] == "SUCCESS", env["LastUpdate"]
            assert env["AirflowVersion"] == version
            dag_id = f"after_{version.replace('.', '')}_{tag}"
            live.aws("s3").put_object(
                Bucket=bucket,
                Key=f"dags/{dag_id}.py",
                Body=DAG.format(dag_id=dag_id, bucket=bucket).encode(),
            )
            ran = wait_until(
                lambda dag_id=dag_id: result(live, bucket, f"results/{dag_id}.txt"),
                timeout=TASK_WITHIN,
                interval=1.0,
                message=f"a DAG to run after the upgrade to {version}",
            )
            assert ran == version
    finally:
        mwaa.delete_environment(Name=name)
        wait_gone(mwaa, name, timeout=180)
