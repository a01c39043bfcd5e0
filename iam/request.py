"""The authorization request: who is calling, what they want to do, and the request context."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from iam.matching import split_arn

ContextInput = Mapping[str, "str | Sequence[str] | bool | int"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal as the policy engine sees it.

    ``arn`` is the user ARN, or the *session* ARN (``arn:aws:sts::ACCT:assumed-role/R/S``) for a
    role session, in which case ``role_arn`` holds the role's IAM ARN. The distinction matters for
    resource policies: a grant to the session or user ARN is not limited by a permissions boundary
    or session policy, a grant to the role ARN is.

    Conditions never read these fields: keys such as ``aws:PrincipalTag/team`` must be in the
    request context (:func:`iam.authorize.build_request` adds them for directory principals).
    """

    arn: str
    type: str = "User"
    account: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    role_arn: str | None = None

    @property
    def account_root_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(f"context values must be strings or lists of strings, not {type(value)}")


def context_value(value: object) -> str | tuple[str, ...]:
    """Coerce one context value: strings stay, lists become tuples, scalars become strings."""
    if type(value) is str:
        return value  # type: ignore[return-value]
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_scalar(v) for v in value)
    return _scalar(value)


def normalise_context(context: ContextInput) -> dict[str, str | tuple[str, ...]]:
    """Lower-case the keys (IAM key names are case-insensitive) and coerce the values.

    Multivalued keys become tuples; booleans become ``"true"``/``"false"``. When two keys differ
    only in case, the later one wins.
    """
    return {
        key.lower(): value if type(value) is str else context_value(value)
        for key, value in context.items()
    }


@dataclass(slots=True, init=False)
class Request:
    """One authorization question. The context must already hold every key the policies may
    test (principal keys, tags, time...); :func:`iam.authorize.authorize` builds it for
    directory principals."""

    action: str
    resource: str
    principal: Caller
    context: dict[str, str | tuple[str, ...]]
    action_key: str
    resource_parts: tuple[str, ...] | None

    def __init__(
        self,
        action: str,
        resource: str,
        principal: Caller,
        context: ContextInput | None = None,
    ) -> None:
        self.action = action
        self.resource = resource
        self.principal = principal
        self.context = normalise_context(context or {})
        self.action_key = action.lower()
        self.resource_parts = split_arn(resource)

    @classmethod
    def prepared(
        cls,
        action: str,
        resource: str,
        principal: Caller,
        context: dict[str, str | tuple[str, ...]],
    ) -> Request:
        """Build from a context that is already normalised (lower-case keys, coerced values),
        skipping a second pass over it."""
        self = cls.__new__(cls)
        self.action = action
        self.resource = resource
        self.principal = principal
        self.context = context
        self.action_key = action.lower()
        self.resource_parts = split_arn(resource)
        return self


def global_context(
    *,
    now: dt.datetime | None = None,
    source_ip: str | None = None,
    secure_transport: bool = True,
    region: str | None = None,
) -> dict[str, str]:
    """The global condition keys every signed request carries (aws:CurrentTime and friends)."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    context = {
        "aws:CurrentTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(moment.timestamp())),
        "aws:SecureTransport": "true" if secure_transport else "false",
    }
    if source_ip:
        context["aws:SourceIp"] = source_ip
    if region:
        context["aws:RequestedRegion"] = region
    return context
