"""A role of the environments' AWS (an execution role), with its policies, read through IAM.

The MWAA API authorizes a call signed by an execution role's session (a task's MwaaHook) with
that role's policies. The role lives in the AWS the environments use, so its policies are read
there with IAM's own read calls, as the control plane's admin, and kept for a few seconds: a
policy change takes effect within TTL_SECONDS, as IAM's own changes take a moment to spread.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from environments.aws.clients import AwsClients

TTL_SECONDS = 5.0


@dataclass(frozen=True)
class RoleFacts:
    role_id: str
    name: str
    arn: str
    tags: dict[str, str] = field(default_factory=dict)
    policies: tuple[dict[str, Any], ...] = ()  # identity policies: inline and attached
    boundary: dict[str, Any] | None = None  # the permissions boundary's document


class RoleReader:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, RoleFacts | None]] = {}

    def by_id(self, role_id: str) -> RoleFacts | None:
        """The role whose id is `role_id` (AROA...), None when there is none."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(role_id)
        if cached is not None and now - cached[0] < TTL_SECONDS:
            return cached[1]
        facts = self._read(role_id)
        with self._lock:
            self._cache[role_id] = (now, facts)
        return facts

    def _read(self, role_id: str) -> RoleFacts | None:
        iam = self._clients.client("iam")
        try:
            role = None
            for page in iam.get_paginator("list_roles").paginate():
                role = next((r for r in page["Roles"] if r["RoleId"] == role_id), None)
                if role is not None:
                    break
            if role is None:
                return None
            name = role["RoleName"]
            full = iam.get_role(RoleName=name)["Role"]
            policies: list[dict[str, Any]] = []
            for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
                for policy_name in page["PolicyNames"]:
                    answer = iam.get_role_policy(RoleName=name, PolicyName=policy_name)
                    policies.append(_document(answer["PolicyDocument"]))
            for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
                for attached in page["AttachedPolicies"]:
                    policies.append(_managed(iam, attached["PolicyArn"]))
            boundary_arn = (full.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
            return RoleFacts(
                role_id=role_id,
                name=name,
                arn=full["Arn"],
                tags={t["Key"]: t["Value"] for t in full.get("Tags") or []},
                policies=tuple(policies),
                boundary=_managed(iam, boundary_arn) if boundary_arn else None,
            )
        except (ClientError, BotoCoreError):
            return None  # unreadable: nothing is granted


def _managed(iam: Any, arn: str) -> dict[str, Any]:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    answer = iam.get_policy_version(PolicyArn=arn, VersionId=version)
    return _document(answer["PolicyVersion"]["Document"])


def _document(value: Any) -> dict[str, Any]:
    """IAM's documents come URL-encoded JSON on the wire; boto3 decodes most, not all."""
    if isinstance(value, dict):
        return value
    return json.loads(unquote(str(value)))
