"""MWAA's check on the execution role: it exists, trusts the Airflow service principals, and
may read the DAG folder of the source bucket."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from environments.contents.dagsync import dag_prefix
from environments.naming import bucket_name
from environments.provisioning.aws_outcomes import execution_role_cannot, misconfigured
from environments.provisioning.step import DONE, Failed, Outcome, StepContext

AIRFLOW_PRINCIPALS = ("airflow.amazonaws.com", "airflow-env.amazonaws.com")


def airflow_trust_policy() -> dict[str, Any]:
    """The smallest trust policy this check accepts, as a new document each call."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": list(AIRFLOW_PRINCIPALS)},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def role_name(role_arn: str) -> str:
    # arn:aws:iam::123456789012:role/path/name -> name (IAM's GetRole takes the bare name).
    return role_arn.split(":role/", 1)[-1].rsplit("/", 1)[-1]


def trusted_services(trust: Any) -> set[str]:
    """Service principals allowed sts:AssumeRole by a trust policy document."""
    if isinstance(trust, str):
        trust = json.loads(unquote(trust))
    statements = trust.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    found: set[str] = set()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        services = (statement.get("Principal") or {}).get("Service", [])
        found.update([services] if isinstance(services, str) else services)
    return found


class CheckExecutionRole:
    name = "check-execution-role"

    def ensure(self, ctx: StepContext) -> Outcome:
        arn = ctx.spec["ExecutionRoleArn"]
        iam = ctx.services.aws.client("iam")
        try:
            role = iam.get_role(RoleName=role_name(arn))["Role"]
        except ClientError as err:
            return misconfigured(
                err, "GetRole", f"The execution role {arn} could not be read; make sure it exists"
            )
        if role.get("Arn") != arn:
            return Failed(
                "INCORRECT_CONFIGURATION",
                f"The execution role {arn} does not exist (found {role.get('Arn')}).",
            )
        missing = [
            p
            for p in AIRFLOW_PRINCIPALS
            if p not in trusted_services(role.get("AssumeRolePolicyDocument") or {})
        ]
        if missing:
            return Failed(
                "INCORRECT_CONFIGURATION",
                f"The execution role {arn} must trust {' and '.join(AIRFLOW_PRINCIPALS)} "
                f"with sts:AssumeRole; its trust policy does not allow {', '.join(missing)}.",
            )
        return _reads_the_dag_folder(ctx)

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE


def _reads_the_dag_folder(ctx: StepContext) -> Outcome:
    """As the execution role: list the DAG folder (s3:ListBucket) and read a file of it
    (s3:GetObject). A role that cannot fails the environment before anything is mirrored."""
    s3 = ctx.services.source_reader(ctx.spec).client("s3")
    bucket = bucket_name(ctx.spec["SourceBucketArn"])
    prefix = dag_prefix(ctx.spec["DagS3Path"])
    action = f"listing s3://{bucket}/{prefix}"
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        for item in listed.get("Contents", []):
            action = f"reading s3://{bucket}/{item['Key']}"
            s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].close()
    except ClientError as err:
        return execution_role_cannot(err, action)
    return DONE
