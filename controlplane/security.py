"""Who is calling and may they: the seam between HTTP and the IAM library.

Every route states what it is about to do as an `Intent` (action, resource, request context)
and asks the application's Gatekeeper before touching the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from environments.service import Requester


@dataclass(frozen=True)
class Intent:
    action: str  # e.g. "airflow:GetEnvironment"
    resource: str  # an ARN, or "*" for actions without a resource type
    # Request-specific condition keys (aws:RequestTag/..., aws:TagKeys, aws:ResourceTag/...).
    context: dict[str, str | list[str]] = field(default_factory=dict)
    # Additional permissions the call needs, e.g. iam:PassRole on the execution role.
    also: tuple[Intent, ...] = ()
    # Tags of the existing target, fetched only when a policy engine asks (aws:ResourceTag/*).
    resource_tags: Callable[[], dict[str, str] | None] | None = None


class Gatekeeper(Protocol):
    def authenticate(self, request: Request, body: bytes) -> Requester: ...

    def authorize(self, request: Request, requester: Requester, intent: Intent) -> None: ...

    def airflow_role(
        self, request: Request, requester: Requester, env_name: str, action: str
    ) -> str: ...


class TrustingGatekeeper:
    """No authentication: every call acts as the bootstrap admin. For tests of the API alone."""

    def __init__(self, admin: Requester) -> None:
        self._admin = admin

    def authenticate(self, request: Request, body: bytes) -> Requester:
        return self._admin

    def authorize(self, request: Request, requester: Requester, intent: Intent) -> None:
        return None

    def airflow_role(
        self, request: Request, requester: Requester, env_name: str, action: str
    ) -> str:
        return "Admin"
