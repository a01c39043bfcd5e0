"""The Amazon provider's MWAA classes, unchanged, against Airdock.

- From outside: MwaaHook.invoke_rest_api, configured only by the AWS profile `airdock serve`
  writes (run with the 3.0.6 environment's own Airflow and provider).
- Inside environment A (3.0.6), a DAG's MwaaTriggerDagRunOperator triggers a DAG in
  environment B (2.10.3) and waits for it, as A's execution role: allowed while that role may
  call airflow:InvokeRestApi on B, and failing once the policy is gone.

(2.10.3's locked provider, 9.0.0, predates MwaaHook, so 3.0.6 is the sender.)
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from environments.aws.roles import TTL_SECONDS
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

TARGET = """
from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    EmptyOperator(task_id="nothing")
"""
SENDER = """
from datetime import datetime
from airflow import DAG
from airflow.providers.amazon.aws.operators.mwaa import MwaaTriggerDagRunOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    MwaaTriggerDagRunOperator(
        task_id="trigger",
        env_name="{target_env}",
        trigger_dag_id="{target_dag}",
        # InvokeRestApi's Path holds 64 characters, as on MWAA: a short run id keeps
        # /dags/<id>/dagRuns/<run id> within them for the operator's wait.
        trigger_run_id="from-a-{{{{ run_id[-8:] }}}}",
        wait_for_completion=True,
        waiter_delay=3,
        waiter_max_attempts=100,
    )
"""
OUTSIDE = """
import json, sys
from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook

hook = MwaaHook(aws_conn_id=None)
print(json.dumps(hook.invoke_rest_api(env_name=sys.argv[1], path=sys.argv[2], method="GET")))
"""


def put_dag(env, dag_id: str, source: str) -> None:
    env.live.aws("s3").put_object(Bucket=env.bucket, Key=f"dags/{dag_id}.py", Body=source.encode())


def wait_known(env, dag_id: str) -> None:
    mwaa = env.live.mwaa()

    def known() -> bool:
        try:
            mwaa.invoke_rest_api(Name=env.name, Path=f"/dags/{dag_id}", Method="GET")
        except mwaa.exceptions.RestApiClientException:
            return False
        return True

    wait_until(known, timeout=240, interval=2, message=f"{env.name} to know {dag_id}")


def run_to_end(env, dag_id: str, run_id: str) -> str:
    """Trigger `dag_id` in `env` (3.x) and wait for the run's final state."""
    mwaa = env.live.mwaa()
    runs = f"/dags/{dag_id}/dagRuns"
    body = {"dag_run_id": run_id, "logical_date": None}
    mwaa.invoke_rest_api(Name=env.name, Path=runs, Method="POST", Body=body)

    def finished() -> str | None:
        try:
            run = mwaa.invoke_rest_api(Name=env.name, Path=f"{runs}/{run_id}", Method="GET")
        except mwaa.exceptions.RestApiServerException:
            return None  # Airflow busier than InvokeRestApi's 10 s (a loaded machine): ask again
        state = run["RestApiResponse"]["state"]
        return state if state in ("success", "failed") else None

    return wait_until(finished, timeout=300, interval=2, message=f"{dag_id} to finish")


def test_trigger_across_environments_as_the_execution_role(shared_environment) -> None:
    a, b = shared_environment("3.0.6"), shared_environment("2.10.3")
    live = a.live
    tag = uuid.uuid4().hex[:8]
    target, sender = f"target_{tag}", f"sender_{tag}"
    put_dag(b, target, TARGET.format(dag_id=target))
    put_dag(a, sender, SENDER.format(dag_id=sender, target_env=b.name, target_dag=target))
    wait_known(b, target)
    wait_known(a, sender)

    # From outside, with the written profile alone, through the provider's own hook.
    python = live.data_dir / "environments" / a.name / "venv" / "bin" / "python"
    env = {**live.cli_env(), "AIRFLOW_HOME": str(live.data_dir / "outside-airflow")}
    done = subprocess.run(
        [str(python), "-c", OUTSIDE, b.name, f"/dags/{target}"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["RestApiStatusCode"] == 200 and answer["RestApiResponse"]["dag_id"] == target

    # Inside A, as A's execution role, allowed to act in B as a User.
    account, region = live.endpoints["account_id"], live.endpoints["region"]
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "airflow:InvokeRestApi",
                       "Resource": f"arn:aws:airflow:{region}:{account}:role/{b.name}/User"}],
    }  # fmt: skip
    iam = live.aws("iam")
    policy = f"invoke-{tag}"
    iam.put_role_policy(RoleName=a.role_name, PolicyName=policy, PolicyDocument=json.dumps(grant))
    try:
        assert run_to_end(a, sender, "allowed") == "success"
    finally:
        iam.delete_role_policy(RoleName=a.role_name, PolicyName=policy)
    target_runs = live.mwaa().invoke_rest_api(
        Name=b.name, Path=f"/dags/{target}/dagRuns", Method="GET"
    )["RestApiResponse"]
    assert [run["state"] for run in target_runs["dag_runs"]] == ["success"]

    # Without the policy, IAM refuses A's role: the task fails and B gets no new run. (The
    # MWAA API reads a role's policies afresh once they are TTL_SECONDS old.)
    time.sleep(TTL_SECONDS + 1)
    assert run_to_end(a, sender, "denied") == "failed"
    target_runs = live.mwaa().invoke_rest_api(
        Name=b.name, Path=f"/dags/{target}/dagRuns", Method="GET"
    )["RestApiResponse"]
    assert target_runs["total_entries"] == 1
