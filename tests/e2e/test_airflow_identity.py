"""The identity bridge (environments.airflow.access) against a real Airflow, 3.0.6 and 2.10.3:
an IAM identity acts in an environment's Airflow with exactly the MWAA role it is given. An
Admin triggers a DAG run; a Viewer of the same identity reads the DAG and is refused the
trigger by Airflow itself; Public sees nothing. The secrets stay private and out of the logs.
"""

from __future__ import annotations

import stat
import uuid

import httpx
import pytest

from environments.airflow.access import AirflowAccess
from environments.airflow.runtime.manager import SECRETS_FILE
from environments.workspace import Workspace
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

DAG = """
from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    EmptyOperator(task_id="nothing")
"""
IDENTITY = "assumed-role/Team/alice"


def trigger_body(version: str) -> dict:
    # 3.x's v2 API wants the logical date named (null: now); 2.x's v1 takes an empty run.
    return {"logical_date": None} if version.startswith("3.") else {}


@pytest.mark.parametrize("version", ["3.0.6", "2.10.3"])
def test_admin_triggers_viewer_cannot(shared_environment, version: str) -> None:
    env = shared_environment(version)
    live = env.live
    dag_id = f"identity_{uuid.uuid4().hex[:8]}"
    live.aws("s3").put_object(
        Bucket=env.bucket, Key=f"dags/{dag_id}.py", Body=DAG.format(dag_id=dag_id).encode()
    )
    access = AirflowAccess(live.data_dir)
    try:

        def parsed() -> bool:
            answer, _ = access.request(env.name, IDENTITY, "Admin", "GET", f"/dags/{dag_id}")
            return answer.status_code == 200

        wait_until(parsed, timeout=240, interval=2, message=f"Airflow to know {dag_id}")

        runs = f"/dags/{dag_id}/dagRuns"
        viewer, _ = access.request(env.name, IDENTITY, "Viewer", "GET", f"/dags/{dag_id}")
        assert viewer.status_code == 200  # a Viewer reads...
        refused, _ = access.request(
            env.name, IDENTITY, "Viewer", "POST", runs, json=trigger_body(version)
        )
        assert refused.status_code == 403  # ...and is refused the trigger by Airflow itself
        hidden, _ = access.request(env.name, IDENTITY, "Public", "GET", f"/dags/{dag_id}")
        assert hidden.status_code == 403
        made, body = access.request(
            env.name, IDENTITY, "Admin", "POST", runs, json=trigger_body(version)
        )
        assert made.status_code == 200, body

        # The same identity's credentials, as a browser or another client would use them.
        login = access.login_for(env.name, IDENTITY, "Viewer")
        assert login.username == "assumed-role~Team~alice~Viewer"
        assert login.password not in repr(login)
        endpoint = access.endpoint(env.name)
        headers = access.headers_for(env.name, IDENTITY, "Viewer")
        listed = httpx.get(f"{endpoint.base_url}{endpoint.api_root}{runs}", headers=headers)
        assert listed.status_code == 200
        assert listed.json()["total_entries"] == 1

        # A second process (a fresh bridge) derives the same passwords and reuses the users.
        other = AirflowAccess(live.data_dir)
        again, _ = other.request(env.name, IDENTITY, "Viewer", "GET", runs)
        assert again.status_code == 200
        other.close()
    finally:
        access.close()

    workspace = Workspace.for_environment(live.data_dir, env.name)
    secrets = workspace.state / SECRETS_FILE
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    logs = workspace.state / "logs"
    for log in logs.glob("*.log"):
        text = log.read_text(errors="replace")
        assert login.password not in text, log
