"""InvokeRestApi against a real Airflow, 3.0.6 (v2 API) and 2.10.3 (v1 API), with boto3 and
the AWS CLI: the caller acts in Airflow as the role its IAM policy maps it to (an Admin
triggers a run, a Viewer is refused it by Airflow), Airflow's 404 and 500 come back as
RestApiClientException and RestApiServerException (HTTP 400 carrying Airflow's status and
body), and hostile paths and callers without any Airflow role are refused by Airdock.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

DAG = """
from datetime import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    EmptyOperator(task_id="nothing")
"""


# Real ways to make Airflow answer 500: a value longer than its database column, where the
# API does not check that length, so PostgreSQL refuses the write and Airflow has no handler for
# that error (nothing is stored). 3.x checks a variable's key but not a connection's host
# (500 characters); 2.x checks the connection's columns but not a variable's key (250).
AIRFLOW_500 = {
    "3": (
        "/connections",
        {"connection_id": "host_too_long", "conn_type": "http", "host": "h" * 600},
    ),
    "2": ("/variables", {"key": "k" * 300, "value": "v"}),
}


def role_session(env, role_name: str, airflow_roles: list[str]):
    """An mwaa client signed by a session of a new role of the embedded IAM that may call
    InvokeRestApi as `airflow_roles` of the environment (none: no Airflow role at all)."""
    live = env.live
    account, region = live.endpoints["account_id"], live.endpoints["region"]
    iam = live.aws("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                       "Action": "sts:AssumeRole"}],
    }  # fmt: skip
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
    resources = [f"arn:aws:airflow:{region}:{account}:role/{env.name}/{r}" for r in airflow_roles]
    statements = [{"Effect": "Allow", "Action": "airflow:GetEnvironment", "Resource": "*"}]
    if resources:
        statements.append(
            {"Effect": "Allow", "Action": "airflow:InvokeRestApi", "Resource": resources}
        )
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="airflow",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    keys = live.aws("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role_name}", RoleSessionName="tester"
    )["Credentials"]
    return boto3.client(
        "mwaa",
        endpoint_url=live.url,
        region_name=region,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )


def trigger_body(version: str) -> dict:
    return {"logical_date": None} if version.startswith("3.") else {}


def refused(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("version", ["3.0.6", "2.10.3"])
def test_invoke_rest_api_end_to_end(shared_environment, version: str) -> None:
    env = shared_environment(version)
    live, name = env.live, env.name
    tag = uuid.uuid4().hex[:8]
    dag_id = f"rest_{tag}"
    live.aws("s3").put_object(
        Bucket=env.bucket, Key=f"dags/{dag_id}.py", Body=DAG.format(dag_id=dag_id).encode()
    )
    admin = live.mwaa()  # the bootstrap admin: airflow:* maps it to Admin

    def known() -> dict | None:
        try:
            return admin.invoke_rest_api(Name=name, Path=f"/dags/{dag_id}", Method="GET")
        except admin.exceptions.RestApiClientException:
            return None

    dag = wait_until(known, timeout=240, interval=2, message=f"Airflow to know {dag_id}")
    assert dag["RestApiStatusCode"] == 200 and dag["RestApiResponse"]["dag_id"] == dag_id

    # QueryParameters reach Airflow; the answer is Airflow's JSON.
    listed = admin.invoke_rest_api(
        Name=name, Path="/dags", Method="GET", QueryParameters={"limit": 1}
    )["RestApiResponse"]
    assert len(listed["dags"]) == 1 and listed["total_entries"] >= 1

    # Admin triggers; a Viewer reads, and Airflow refuses it the trigger.
    runs = f"/dags/{dag_id}/dagRuns"
    made = admin.invoke_rest_api(Name=name, Path=runs, Method="POST", Body=trigger_body(version))
    assert made["RestApiStatusCode"] == 200 and made["RestApiResponse"]["dag_run_id"]
    viewer = role_session(env, f"viewer-{tag}", ["Viewer"])
    seen = viewer.invoke_rest_api(Name=name, Path=runs, Method="GET")["RestApiResponse"]
    assert seen["total_entries"] == 1
    error = refused(
        lambda: viewer.invoke_rest_api(
            Name=name, Path=runs, Method="POST", Body=trigger_body(version)
        )
    )
    assert error.response["Error"]["Code"] == "RestApiClientException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["RestApiStatusCode"] == 403
    assert isinstance(error.response["RestApiResponse"], dict)

    # Airflow's 404, as a client error carrying Airflow's own body.
    error = refused(lambda: admin.invoke_rest_api(Name=name, Path="/dags/no_such", Method="GET"))
    assert error.response["Error"]["Code"] == "RestApiClientException"
    assert error.response["RestApiStatusCode"] == 404
    assert "detail" in error.response["RestApiResponse"]  # Airflow's own error body

    # Airflow's 500 (a real one, see AIRFLOW_500), as a server error, still HTTP 400.
    path, body = AIRFLOW_500[version[0]]
    error = refused(lambda: admin.invoke_rest_api(Name=name, Path=path, Method="POST", Body=body))
    assert error.response["Error"]["Code"] == "RestApiServerException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.response["RestApiStatusCode"] == 500

    # Refused by Airdock before Airflow: no Airflow role at all, a path climbing out.
    nobody = role_session(env, f"nobody-{tag}", [])
    error = refused(lambda: nobody.invoke_rest_api(Name=name, Path="/dags", Method="GET"))
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    error = refused(lambda: admin.invoke_rest_api(Name=name, Path="/../auth/token", Method="GET"))
    assert error.response["Error"]["Code"] == "ValidationException"

    # The AWS CLI, with the written profile alone.
    done = live.aws_cli(
        "mwaa", "invoke-rest-api", "--name", name, "--path", f"/dags/{dag_id}", "--method", "GET"
    )
    answer = json.loads(done.stdout)
    assert answer["RestApiStatusCode"] == 200 and answer["RestApiResponse"]["dag_id"] == dag_id
    failed = live.aws_cli(
        "mwaa", "invoke-rest-api", "--name", name, "--path", "/dags/no_such", "--method", "GET",
        check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "RestApiClientException" in failed.stderr
