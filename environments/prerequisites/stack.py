"""The MWAA prerequisites as one CloudFormation stack: deploy it, read it back, tear it down.

`infra/prerequisites.yaml` declares what CreateEnvironment needs (VPC, two private subnets,
security group, DAG bucket, execution role). `deploy` creates or updates the stack and waits;
environments.prerequisites.arguments turns its outputs into CreateEnvironment arguments.
Against an emulator (`emulated=True`, e.g. the embedded moto) the gaps of its CloudFormation are
closed as environments.prerequisites.embedded describes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from environments.aws.clients import AwsClients
from environments.prerequisites import embedded as infra_emulator
from environments.prerequisites.errors import InfraError, explain
from environments.prerequisites.template import parse_template

# The template names the execution role, which CloudFormation only does when told it may.
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
_NO_UPDATES = "No updates are to be performed"


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
        raise InfraError(explain(err)) from err
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
        raise InfraError(explain(err)) from err
    return Teardown(stack_name, existed=True, retained=retained)


def outputs_of(clients: AwsClients, stack_name: str) -> dict[str, str]:
    """The outputs of a live stack; empty when there is no such stack."""
    try:
        stack = _describe(clients.client("cloudformation"), stack_name)
    except (ClientError, BotoCoreError) as err:
        raise InfraError(explain(err)) from err
    if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
        return {}
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# --- CloudFormation plumbing ------------------------------------------------------------------


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
