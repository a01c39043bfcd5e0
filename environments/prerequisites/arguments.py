"""From a deployed stack to CreateEnvironment: the arguments, and the reconciler's own checks on
them, so that a problem shows up before the environment exists rather than as CREATE_FAILED."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from environments.aws.clients import AwsClients
from environments.host import HostServices
from environments.naming import Placement
from environments.prerequisites.errors import InfraError, explain
from environments.provisioning.step import Failed, RetryLater, StepContext
from environments.provisioning.steps.check_bucket import CheckSourceBucket
from environments.provisioning.steps.check_kms import CheckKmsKey
from environments.provisioning.steps.check_network import CheckNetwork
from environments.provisioning.steps.check_role import CheckExecutionRole


def create_environment_args(outputs: dict[str, str], dag_s3_path: str = "dags") -> dict[str, Any]:
    """CreateEnvironment input (as for `aws mwaa create-environment --cli-input-json`)."""
    missing = [
        key
        for key in ("EnvironmentName", "ExecutionRoleArn", "BucketArn", "SecurityGroupId")
        if not outputs.get(key)
    ]
    subnets = outputs.get("SubnetIds", "").split(",") if outputs.get("SubnetIds") else []
    if not subnets and outputs.get("PrivateSubnet1Id") and outputs.get("PrivateSubnet2Id"):
        subnets = [outputs["PrivateSubnet1Id"], outputs["PrivateSubnet2Id"]]
    if len(subnets) != 2:
        missing.append("SubnetIds")
    if missing:
        raise InfraError(f"the stack has no output(s) {', '.join(missing)}")
    args: dict[str, Any] = {
        "Name": outputs["EnvironmentName"],
        "ExecutionRoleArn": outputs["ExecutionRoleArn"],
        "SourceBucketArn": outputs["BucketArn"],
        "DagS3Path": dag_s3_path,
        "NetworkConfiguration": {
            "SubnetIds": subnets,
            "SecurityGroupIds": [outputs["SecurityGroupId"]],
        },
    }
    if outputs.get("KmsKey"):
        args["KmsKey"] = outputs["KmsKey"]
    return args


def preflight(clients: AwsClients, args: dict[str, Any], region: str) -> list[str]:
    """Run the reconciler's prerequisite checks on CreateEnvironment arguments: the problems."""
    # arn:aws:iam::123456789012:role/... names the account and partition without an STS call.
    role_arn_parts = args["ExecutionRoleArn"].split(":")
    placement = Placement(account_id=role_arn_parts[4], region=region, partition=role_arn_parts[1])
    ctx = StepContext(
        name=args["Name"],
        arn=placement.environment_arn(args["Name"]),
        env_id="preflight",
        spec=args,
        tags={},
        placement=placement,
        services=HostServices(aws=clients),
    )
    problems = []
    for step in (CheckSourceBucket(), CheckExecutionRole(), CheckNetwork(), CheckKmsKey()):
        try:
            outcome = step.ensure(ctx)
        except (ClientError, BotoCoreError) as err:  # steps turn only some errors into outcomes
            raise InfraError(explain(err)) from err
        if isinstance(outcome, Failed):
            problems.append(outcome.message)
        elif isinstance(outcome, RetryLater):
            problems.append(f"{step.name} could not finish: {outcome.reason}")
    return problems
