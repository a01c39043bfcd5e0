"""The MWAA prerequisites as one CloudFormation stack: deploy it, read it back, tear it down.

`infra/prerequisites.yaml` declares what CreateEnvironment needs (VPC, two private subnets,
security group, DAG bucket, execution role). `deploy` creates or updates the stack and waits;
`create_environment_args` turns its outputs into CreateEnvironment arguments, and `preflight`
runs the reconciler's own prerequisite checks on them, so a problem shows up here rather than
as CREATE_FAILED later. Against an emulator (`emulated=True`, e.g. the embedded moto) the gaps
of its CloudFormation are closed as environments.prerequisites.embedded describes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from environments.aws.clients import AwsClients
from environments.naming import Placement
from environments.prerequisites import embedded as infra_emulator
from environments.provisioning.step import Failed, RetryLater, StepContext, StepServices
from environments.provisioning.steps.check_bucket import CheckSourceBucket
from environments.provisioning.steps.check_kms import CheckKmsKey
from environments.provisioning.steps.check_network import CheckNetwork
from environments.provisioning.steps.check_role import CheckExecutionRole

TEMPLATE_FILE = "prerequisites.yaml"
# The template names the execution role, which CloudFormation only does when told it may.
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
_NO_UPDATES = "No updates are to be performed"


class InfraError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


def find_template(explicit: Path | None = None) -> Path:
    """The template to deploy: the given path, else infra/ of the source tree we run from."""
    if explicit is not None:
        if not explicit.is_file():
            raise InfraError(f"template {explicit} does not exist")
        return explicit
    # An editable install or a checkout; a wheel carries no infra/ folder.
    candidate = Path(__file__).resolve().parents[2] / "infra" / TEMPLATE_FILE
    if candidate.is_file():
        return candidate
    raise InfraError(
        f"cannot find infra/{TEMPLATE_FILE} next to the installed package ({candidate}); "
        "run from an Airdock checkout or pass --template PATH"
    )


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !Sub, !GetAtt a.b, ...)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def parse_template(body: str) -> dict[str, Any]:
    try:
        parsed = yaml.load(
            body, Loader=_TemplateLoader
        )  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        raise InfraError(f"the template is not valid YAML: {err}") from err
    if not isinstance(parsed, dict) or "Resources" not in parsed:
        raise InfraError("the template has no Resources section")
    return parsed


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    stack_id: str
    status: str
    action: str  # "created", "updated" or "unchanged"
    outputs: dict[str, str]
    parameters: dict[str, str]
    # What was set through the plain APIs because the emulator's CloudFormation left it out.
    adjustments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Teardown:
    stack_name: str
    existed: bool
    retained: list[str] = field(default_factory=list)  # "Type physical-id" kept on purpose


def default_region() -> str | None:
    """The region the standard AWS configuration names (AWS_REGION, the profile), if any."""
    return boto3.session.Session().region_name


def deploy(
    clients: AwsClients,
    body: str,
    stack_name: str,
    parameters: dict[str, str],
    *,
    emulated: bool,
    new_stack_defaults: dict[str, str] | None = None,
    wait: bool = True,
    timeout: float = 3600.0,
    poll: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Deployment:
    """Create the stack, or update it in place (a no-op when nothing changed).

    `parameters` not given keep the stack's current values on an update, as with
    `aws cloudformation deploy`; `new_stack_defaults` apply only when the stack is created.
    """
    template = parse_template(body)
    declared = template.get("Parameters") or {}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise InfraError(
            f"unknown template parameter(s) {', '.join(unknown)}; "
            f"the template takes {', '.join(declared)}"
        )
    poll = poll if poll is not None else (0.2 if emulated else 5.0)
    cf = clients.client("cloudformation")
    try:
        given = dict(parameters)
        if emulated:
            given.update(infra_emulator.zone_parameters(clients, declared, given))
        existing = _describe(cf, stack_name)
        if existing is not None and existing["StackStatus"].endswith("_IN_PROGRESS"):
            progress(f"waiting for {stack_name} ({existing['StackStatus']}) to settle")
            existing = _wait(cf, existing["StackId"], timeout, poll, accept=None)
        if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
            # A stack whose creation failed can only be deleted; then start afresh.
            progress(f"{stack_name} failed to create earlier; deleting it first")
            cf.delete_stack(StackName=existing["StackId"])
            _wait_gone(cf, stack_name, timeout, poll)
            existing = None
        started = time.time()
        if existing is None:
            given = {**(new_stack_defaults or {}), **given}
            progress(f"creating stack {stack_name}")
            stack_id = cf.create_stack(
                StackName=stack_name,
                TemplateBody=body,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
                Capabilities=CAPABILITIES,
                Tags=[{"Key": "airdock:stack", "Value": "prerequisites"}],
            )["StackId"]
            action, accept = "created", {"CREATE_COMPLETE"}
        else:
            stack_id = existing["StackId"]
            previous = {p["ParameterKey"] for p in existing.get("Parameters", [])}
            # Like `aws cloudformation deploy`: a parameter not given keeps its current value.
            listed = [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()] + [
                {"ParameterKey": k, "UsePreviousValue": True}
                for k in declared
                if k not in given and k in previous
            ]
            try:
                progress(f"applying the template to stack {stack_name}")
                cf.update_stack(
                    StackName=stack_id,
                    TemplateBody=body,
                    Parameters=listed,
                    Capabilities=CAPABILITIES,
                )
                action, accept = "updated", {"UPDATE_COMPLETE"}
            except ClientError as err:
                if _NO_UPDATES not in str(err):
                    raise
                action, accept = "unchanged", None
        if emulated and action == "updated":
            progress(
                "note: moto applies stack updates only in part (it neither removes resources whose "
                "Condition turned false nor changes every property); if something is off, run "
                "`airdock infra down` and `up` again"
            )
        if not wait:
            stack = _describe(cf, stack_id) or {}
            return Deployment(
                stack_name, stack_id, stack.get("StackStatus", "?"), action, {}, given
            )
        stack = _wait(cf, stack_id, timeout, poll, accept=accept, since=started)
        adjustments = (
            infra_emulator.close_gaps(clients, template, stack, _stack_resources(cf, stack_id))
            if emulated
            else []
        )
    except (ClientError, BotoCoreError) as err:
        raise InfraError(_explain(err)) from err
    return Deployment(
        stack_name,
        stack_id,
        stack["StackStatus"],
        action,
        {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        adjustments,
    )


def destroy(
    clients: AwsClients,
    stack_name: str,
    *,
    emulated: bool,
    wait: bool = True,
    timeout: float = 3600.0,
    poll: float | None = None,
    body: str | None = None,
) -> Teardown:
    """Delete the stack (nothing to do when there is none). Retained resources stay."""
    poll = poll if poll is not None else (0.2 if emulated else 5.0)
    cf = clients.client("cloudformation")
    try:
        stack = _describe(cf, stack_name)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return Teardown(stack_name, existed=False)
        resources = _stack_resources(cf, stack["StackId"])
        template = parse_template(body or _stack_template(cf, stack["StackId"]))
        retained = [
            f"{r['ResourceType']} {r['PhysicalResourceId']}"
            for r in resources
            if (template["Resources"].get(r["LogicalResourceId"]) or {}).get("DeletionPolicy")
            == "Retain"
        ]
        if emulated:
            infra_emulator.remove_undeletable(clients, resources)
        cf.delete_stack(StackName=stack["StackId"])
        if wait:
            _wait_gone(cf, stack_name, timeout, poll)
    except (ClientError, BotoCoreError) as err:
        raise InfraError(_explain(err)) from err
    return Teardown(stack_name, existed=True, retained=retained)


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
        services=StepServices(aws=clients),
    )
    problems = []
    for step in (CheckSourceBucket(), CheckExecutionRole(), CheckNetwork(), CheckKmsKey()):
        try:
            outcome = step.ensure(ctx)
        except (ClientError, BotoCoreError) as err:  # steps turn only some errors into outcomes
            raise InfraError(_explain(err)) from err
        if isinstance(outcome, Failed):
            problems.append(outcome.message)
        elif isinstance(outcome, RetryLater):
            problems.append(f"{step.name} could not finish: {outcome.reason}")
    return problems


# --- CloudFormation plumbing ------------------------------------------------------------------


def _explain(err: ClientError | BotoCoreError) -> str:
    if isinstance(err, NoCredentialsError):
        return (
            f"{err}: configure AWS credentials (environment, `aws configure`, AWS_PROFILE) "
            "or target a server with --data-dir"
        )
    return str(err)


def _describe(cf: Any, stack: str) -> dict[str, Any] | None:
    try:
        return cf.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise


def _wait(
    cf: Any,
    stack_id: str,
    timeout: float,
    poll: float,
    *,
    accept: set[str] | None,
    since: float | None = None,
) -> dict[str, Any]:
    """Poll until the stack settles; `accept` None takes any settled status."""
    deadline = time.monotonic() + timeout
    while True:
        stack = _describe(cf, stack_id)
        if stack is None:
            raise InfraError(f"stack {stack_id} disappeared")
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            if accept is None or status in accept:
                return stack
            raise InfraError(
                f"stack {stack['StackName']} ended in {status}"
                + "".join(f"\n  {line}" for line in _failure_reasons(cf, stack_id, since))
            )
        if time.monotonic() > deadline:
            raise InfraError(f"stack {stack['StackName']} still {status} after {timeout:.0f}s")
        time.sleep(poll)


def _wait_gone(cf: Any, stack_name: str, timeout: float, poll: float) -> None:
    """Poll by name until the stack is gone. Not by id: AWS would answer DELETE_COMPLETE, but
    moto re-creates the resources the outputs of a deleted stack refer to when asked."""
    deadline = time.monotonic() + timeout
    while True:
        stack = _describe(cf, stack_name)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            reasons = _failure_reasons(cf, stack["StackId"], None)
            raise InfraError(
                f"stack {stack_name} ended in {stack['StackStatus']}"
                + "".join(f"\n  {line}" for line in reasons)
            )
        if time.monotonic() > deadline:
            raise InfraError(
                f"stack {stack_name} still {stack['StackStatus']} after {timeout:.0f}s"
            )
        time.sleep(poll)


def _failure_reasons(cf: Any, stack_id: str, since: float | None) -> list[str]:
    try:
        events = cf.describe_stack_events(StackName=stack_id)["StackEvents"]
    except ClientError:
        return []
    reasons = []
    for event in reversed(events):  # oldest first: the first failure is the cause
        stamp = event.get("Timestamp")
        # Events of earlier operations are history; allow for some clock skew.
        if since is not None and stamp is not None and stamp.timestamp() < since - 30:
            continue
        if event.get("ResourceStatus", "").endswith("FAILED") and event.get("ResourceStatusReason"):
            reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
    return reasons


def _stack_resources(cf: Any, stack_id: str) -> list[dict[str, Any]]:
    found = []
    for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_id):
        found.extend(page["StackResourceSummaries"])
    return found


def _stack_template(cf: Any, stack_id: str) -> str:
    body = cf.get_template(StackName=stack_id)["TemplateBody"]
    # boto3 hands back JSON templates already parsed; YAML ones as text.
    return body if isinstance(body, str) else yaml.safe_dump(body)
