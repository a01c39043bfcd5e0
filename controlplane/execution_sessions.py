"""Sessions of the environments' own roles (execution roles) on the MWAA API.

A task's MwaaHook signs its MWAA calls with the execution role's session, which the embedded
AWS's sts:AssumeRole minted into the shared key store under the role's id
(`embedded:AROA...`, see controlplane.aws_gateway.identity). The MWAA API knows the key from
that store; the role and its policies live in the embedded IAM, read through IAM's own calls
(environments.aws.roles). So IAM decides an execution role's `airflow:InvokeRestApi` exactly
as it decides a user's.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import json

import iam
from controlplane.keystore import EMBEDDED_ROLE, KeyCache
from environments.aws.roles import RoleFacts, RoleReader

_INVALID = "The security token included in the request is invalid."


class ExecutionRoleSessions:
    def __init__(self, keys: KeyCache, roles: RoleReader, account_id: str) -> None:
        self._keys = keys
        self._roles = roles
        self._account_id = account_id

    def _key(self, access_key_id: str) -> iam.AccessKey | None:
        key = self._keys.lookup(access_key_id)
        if key is None or not (key.role or "").startswith(EMBEDDED_ROLE):
            return None
        return key

    def lookup_secret(self, access_key_id: str, session_token: str | None) -> str:
        """As iam.Directory.lookup_secret, for a session of an embedded role."""
        key = self._key(access_key_id)
        if key is None or key.session_token is None or session_token is None:
            raise iam.SigV4Error(iam.SigV4Error.UNRECOGNIZED, _INVALID)
        if not hmac.compare_digest(key.session_token.encode(), session_token.encode()):
            raise iam.SigV4Error(iam.SigV4Error.UNRECOGNIZED, _INVALID)
        if key.expires_at is not None and dt.datetime.now(dt.UTC) >= key.expires_at:
            raise iam.SigV4Error(
                iam.SigV4Error.EXPIRED, "The security token included in the request is expired"
            )
        return key.secret_access_key

    def principal(self, access_key_id: str) -> iam.Principal | None:
        key = self._key(access_key_id)
        if key is None or key.role is None:
            return None
        role = self._roles.by_id(key.role[len(EMBEDDED_ROLE) :])
        if role is None:
            return None  # the role is gone, and its sessions with it
        return self._session(role, key.session_name or access_key_id, key.issued_at)

    def _session(
        self, role: RoleFacts, session_name: str, issued_at: dt.datetime | None
    ) -> iam.Principal:
        return iam.Principal(
            arn=f"arn:aws:sts::{self._account_id}:assumed-role/{role.name}/{session_name}",
            type="AssumedRole",
            account=self._account_id,
            name=role.name,
            user_id=f"{role.role_id}:{session_name}",
            tags=dict(role.tags),
            identity_policies=tuple(_parsed(p, role.name) for p in role.policies),
            boundary=_parsed(role.boundary, role.name) if role.boundary is not None else None,
            role_arn=role.arn,
            session_name=session_name,
            token_issue_time=issued_at,
        )


_DENY_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
}


def _parsed(document: dict, role_name: str) -> iam.Policy:
    return _parse(json.dumps(document, sort_keys=True), role_name)


@functools.lru_cache(maxsize=512)
def _parse(text: str, role_name: str) -> iam.Policy:
    try:
        return iam.parse_policy(text, kind="identity", name=role_name)
    except iam.PolicyError:
        # A policy the engine cannot read grants nothing (and a boundary allows nothing).
        return iam.parse_policy(_DENY_ALL, kind="identity", name=role_name)
