"""Requests of the RPC-style services (query, EC2, JSON, CBOR) -> IAM action and resource ARN.

The action is ``<prefix>:<Operation>``; the resource comes from the parameter that names the
target (a log group, a queue URL, a role, a stack, a key). Operations without a resource type
(Describe*, List*, PutMetricData, ...) are authorized on ``*``, as AWS does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from controlplane.aws_gateway.checks import Check, Where
from controlplane.aws_gateway.wire import Incoming

# Signing name -> IAM action prefix, where they differ.
_PREFIX = {"monitoring": "cloudwatch"}
_LOG_STREAM_ACTIONS = {"PutLogEvents", "GetLogEvents", "DeleteLogStream"}
_EC2_TYPES = {
    "vpc": "vpc",
    "subnet": "subnet",
    "sg": "security-group",
    "vpce": "vpc-endpoint",
    "igw": "internet-gateway",
    "rtb": "route-table",
    "nat": "natgateway",
    "eni": "network-interface",
    "i": "instance",
    "vol": "volume",
    "acl": "network-acl",
    "eipalloc": "elastic-ip",
    "dopt": "dhcp-options",
    "pl": "prefix-list",
}
_EC2_ID = re.compile(r"^([a-z]+)-[0-9a-f]{8,17}$")

RolePath = Callable[[str], "str | None"]


def rpc_checks(req: Incoming, where: Where, role_path: RolePath) -> list[Check]:
    operation = req.operation
    service = req.service
    prefix = _PREFIX.get(service, service)
    action = f"{prefix}:{operation}"
    params = req.params
    resource, owner = "*", None
    if service == "logs":
        resource = _logs(operation, params, where)
    elif service == "sqs":
        resource = _sqs(operation, params, req, where)
        if resource != "*":
            owner = ("sqs", resource)
    elif service == "iam":
        resource = _iam(params, where, role_path)
    elif service == "sts":
        resource = str(params.get("RoleArn") or "*")
    elif service == "ec2":
        resource = _ec2(operation, params, where)
    elif service == "cloudformation":
        resource = _stack(params, where)
    elif service == "kms":
        resource = _kms(params, where)
    elif service == "monitoring":
        resource = _cloudwatch(params, where)
    return [Check(action, resource, {}, owner)]


def _text(params: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _logs(operation: str, params: dict[str, Any], where: Where) -> str:
    group = _text(params, "logGroupName", "logGroupIdentifier")
    base = f"arn:aws:logs:{where.region}:{where.account_id}:log-group:"
    if group is None:
        arn = _text(params, "resourceArn")
        return arn.removesuffix(":*") if arn else "*"
    if group.startswith("arn:"):
        return group.removesuffix(":*")
    stream = _text(params, "logStreamName")
    if stream and operation in _LOG_STREAM_ACTIONS:
        return f"{base}{group}:log-stream:{stream}"
    return base + group


def _sqs(operation: str, params: dict[str, Any], req: Incoming, where: Where) -> str:
    url = _text(params, "QueueUrl")
    path = urlparse(url).path if url else (req.path if req.protocol == "query" else "")
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2:
        account, name = parts
        return f"arn:aws:sqs:{where.region}:{account}:{name}"
    name = _text(params, "QueueName")
    if name:
        owner = _text(params, "QueueOwnerAWSAccountId") or where.account_id
        return f"arn:aws:sqs:{where.region}:{owner}:{name}"
    return "*"


def _iam(params: dict[str, Any], where: Where, role_path: RolePath) -> str:
    base = f"arn:aws:iam::{where.account_id}:"
    if role := _text(params, "RoleName"):
        return f"{base}role{role_path(role) or _text(params, 'Path') or '/'}{role}"
    if user := _text(params, "UserName"):
        return f"{base}user{_text(params, 'Path') or '/'}{user}"
    if group := _text(params, "GroupName"):
        return f"{base}group{_text(params, 'Path') or '/'}{group}"
    if profile := _text(params, "InstanceProfileName"):
        return f"{base}instance-profile{_text(params, 'Path') or '/'}{profile}"
    if arn := _text(params, "PolicyArn", "OpenIDConnectProviderArn", "SAMLProviderArn"):
        return arn
    if policy := _text(params, "PolicyName"):
        return f"{base}policy{_text(params, 'Path') or '/'}{policy}"
    return "*"


def _ec2(operation: str, params: dict[str, Any], where: Where) -> str:
    if operation.startswith("Describe"):
        return "*"
    for name, value in params.items():
        if not isinstance(value, str) or not (name.endswith("Id") or ".1" in name):
            continue
        found = _EC2_ID.match(value)
        if found and found.group(1) in _EC2_TYPES:
            kind = _EC2_TYPES[found.group(1)]
            return f"arn:aws:ec2:{where.region}:{where.account_id}:{kind}/{value}"
    return "*"


def _stack(params: dict[str, Any], where: Where) -> str:
    stack = _text(params, "StackName")
    if stack is None:
        return "*"
    if stack.startswith("arn:"):
        return stack
    return f"arn:aws:cloudformation:{where.region}:{where.account_id}:stack/{stack}/*"


def _kms(params: dict[str, Any], where: Where) -> str:
    key = _text(params, "KeyId", "TargetKeyId")
    base = f"arn:aws:kms:{where.region}:{where.account_id}:"
    if key is None:
        alias = _text(params, "AliasName")
        return base + alias if alias else "*"
    if key.startswith("arn:"):
        return key
    return base + key if key.startswith("alias/") else f"{base}key/{key}"


def _cloudwatch(params: dict[str, Any], where: Where) -> str:
    alarm = _text(params, "AlarmName", "AlarmNames.member.1")
    if alarm:
        return f"arn:aws:cloudwatch:{where.region}:{where.account_id}:alarm:{alarm}"
    return "*"
