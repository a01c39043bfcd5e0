"""What the principal directory is made of: users, groups, roles, access keys, and the
:class:`Principal` an access key resolves to.

Plain immutable values. :mod:`iam.directory_loader` builds them from the configuration and
:class:`iam.directory.Directory` looks them up; neither is imported here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from iam.policy import Policy, parse_policy
from iam.request import Caller

ADMIN_USER = "airdock-admin"
ADMIN_POLICY_NAME = "AdministratorAccess"
ADMIN_POLICY = parse_policy(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AdministratorAccess", "Effect": "Allow", "Action": "*", "Resource": "*"}
        ],
    },
    name=ADMIN_POLICY_NAME,
)
BUILTIN_POLICIES: Mapping[str, Policy] = {ADMIN_POLICY_NAME: ADMIN_POLICY}


def unique_id(prefix: str, arn: str) -> str:
    """A stable AWS-style unique id (``AIDA...``/``AROA...``, 21 characters) for an ARN."""
    digest = base64.b32encode(hashlib.sha256(arn.encode()).digest()).decode()
    return prefix + digest[:17]


@dataclass(frozen=True)
class AccessKey:
    """An access key and whom it belongs to: a user, or a role (then it acts as a session).

    ``session_token`` set means temporary credentials: requests must present that token.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    user: str | None = None
    role: str | None = None
    session_name: str | None = None
    session_token: str | None = field(default=None, repr=False)
    issued_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    session_policies: tuple[Policy, ...] | None = None
    session_tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.user is None) == (self.role is None):
            raise ValueError("an access key belongs to exactly one user or role")


@dataclass(frozen=True)
class Group:
    name: str
    arn: str
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class Identity:
    """What users and roles have in common."""

    name: str
    path: str
    arn: str
    tags: Mapping[str, str]
    policies: tuple[Policy, ...]  # attached + inline, its own (a user's groups add theirs)
    boundary: Policy | None


@dataclass(frozen=True)
class User(Identity):
    user_id: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Role(Identity):
    role_id: str
    trust_policy: Policy | None


@dataclass(frozen=True, eq=False)
class Principal:
    """An authenticated caller with everything authorization needs.

    For a role session ``arn`` is the session ARN and ``role_arn`` the role's; ``name`` is the
    user or role name.
    """

    arn: str
    type: str
    account: str
    name: str
    user_id: str
    tags: Mapping[str, str]
    identity_policies: tuple[Policy, ...]
    boundary: Policy | None = None
    session_policies: tuple[Policy, ...] | None = None
    role_arn: str | None = None
    session_name: str | None = None
    token_issue_time: dt.datetime | None = None

    @cached_property
    def caller(self) -> Caller:
        return Caller(
            arn=self.arn,
            type=self.type,
            account=self.account,
            tags=dict(self.tags),
            role_arn=self.role_arn,
        )

    @cached_property
    def context_keys(self) -> Mapping[str, str]:
        """The condition keys this principal contributes to every request."""
        keys: dict[str, str] = {
            "aws:userid": self.user_id,
            "aws:PrincipalArn": self.role_arn or self.arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": self.type,
        }
        if self.type == "User":
            keys["aws:username"] = self.name
        if self.token_issue_time is not None:
            keys["aws:TokenIssueTime"] = self.token_issue_time.astimezone(dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        for tag, value in self.tags.items():
            keys[f"aws:PrincipalTag/{tag}"] = value
        return keys

    @cached_property
    def context_lower(self) -> Mapping[str, str]:
        """:attr:`context_keys` with lower-cased names, ready to merge into a request."""
        return {key.lower(): value for key, value in self.context_keys.items()}
