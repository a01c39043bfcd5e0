"""Who signed a request to the embedded AWS: the same identity store as the MWAA API.

Users, roles and their keys come from the IAM config, the bootstrap admin from the data dir,
minted keys and role sessions from the shared key store. One more kind of session lives in that
store: a session of a role of the *embedded* IAM (an execution role created with
``aws iam create-role``), minted by this gateway's sts:AssumeRole. Its key names the role by
moto's role id (``embedded:AROA...``), so a role deleted and made again under the same name does
not inherit the old sessions, and its policies are read from the embedded IAM at each request.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

import iam
from controlplane.aws_gateway.moto_state import MotoState
from controlplane.iam_config import DirectorySource
from controlplane.keystore import EMBEDDED_ROLE, KeyCache, KeyStore, MintedKey
from iam.identities import ADMIN_USER, Role

__all__ = ["EMBEDDED_ROLE", "Identities"]
_INVALID = "The security token included in the request is invalid."


class Identities:
    def __init__(
        self, source: DirectorySource, keys: KeyCache, store: KeyStore, state: MotoState
    ) -> None:
        self._source = source
        self._keys = keys
        self._store = store
        self._state = state

    @property
    def directory(self) -> iam.Directory:
        return self._source.current

    def admin_arn(self) -> str:
        return f"arn:aws:iam::{self.directory.account_id}:user/{ADMIN_USER}"

    # --- authentication -------------------------------------------------------------------

    def lookup_secret(self, access_key_id: str, session_token: str | None) -> str:
        try:
            return self.directory.lookup_secret(access_key_id, session_token)
        except iam.SigV4Error as err:
            if err.code != iam.SigV4Error.UNRECOGNIZED:
                raise
        key = self._embedded_key(access_key_id)
        if key is None or key.session_token is None or session_token is None:
            raise iam.SigV4Error(iam.SigV4Error.UNRECOGNIZED, _INVALID)
        if not hmac.compare_digest(key.session_token.encode(), session_token.encode()):
            raise iam.SigV4Error(iam.SigV4Error.UNRECOGNIZED, _INVALID)
        if key.expires_at is not None and dt.datetime.now(dt.UTC) >= key.expires_at:
            raise iam.SigV4Error(
                iam.SigV4Error.EXPIRED, "The security token included in the request is expired"
            )
        return key.secret_access_key

    def _embedded_key(self, access_key_id: str) -> iam.AccessKey | None:
        key = self._keys.lookup(access_key_id)
        if key is None or not (key.role or "").startswith(EMBEDDED_ROLE):
            return None
        return key

    def principal(self, access_key_id: str) -> iam.Principal | None:
        found = self.directory.principal_for_key(access_key_id)
        if found is not None:
            return found
        key = self._embedded_key(access_key_id)
        if key is None or key.role is None:
            return None
        role = self._state.role_by_id(key.role[len(EMBEDDED_ROLE) :])
        if role is None:
            return None  # the role is gone, and its sessions with it
        return self.embedded_session(role, key.session_name or access_key_id, key.issued_at)

    def embedded_session(
        self, role: Any, session_name: str, issued_at: dt.datetime | None
    ) -> iam.Principal:
        policies, boundary = self._state.role_policies(role)
        # moto keeps a role's tags as a dict by key, or as a list when CloudFormation made it.
        raw = getattr(role, "tags", None) or {}
        items = raw.values() if isinstance(raw, dict) else raw
        tags = {t["Key"]: t["Value"] for t in items if isinstance(t, dict) and "Key" in t}
        account = self.directory.account_id
        return iam.Principal(
            arn=f"arn:aws:sts::{account}:assumed-role/{role.name}/{session_name}",
            type="AssumedRole",
            account=account,
            name=role.name,
            user_id=f"{role.id}:{session_name}",
            tags=tags,
            identity_policies=policies,
            boundary=boundary,
            role_arn=role.arn,
            session_name=session_name,
            token_issue_time=issued_at,
        )

    # --- sessions -------------------------------------------------------------------------

    def configured_role(self, role_arn: str) -> Role | None:
        for role in self.directory.roles.values():
            if role.arn == role_arn:
                return role
        return None

    def mint_session(self, role: str, session_name: str, seconds: int) -> MintedKey:
        return self._store.mint_session(role, session_name, seconds)
