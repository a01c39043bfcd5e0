"""The principal directory: users, groups, roles, their policies and access keys.

Pure data: the directory is built from a mapping (the parsed YAML file, validated by
:mod:`iam.directory_loader`) and never watches files or touches storage. Keys minted at runtime
live elsewhere and are plugged in with :meth:`Directory.with_extra_keys` or
:meth:`Directory.with_key_source`.

A directory is immutable; every ``with_*`` method returns a new one, so a server can swap a
reloaded directory in atomically.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from iam.directory_loader import load_directory
from iam.errors import DirectoryError, SigV4Error
from iam.identities import (
    ADMIN_POLICY,
    ADMIN_USER,
    AccessKey,
    Group,
    Principal,
    Role,
    User,
    unique_id,
)
from iam.policy import Policy

KeySource = Callable[[str], AccessKey | None]


def _aware(moment: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken as UTC, so comparisons never raise."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _dedupe(policies: Iterable[Policy]) -> tuple[Policy, ...]:
    """Drop repeats of the same policy object (a managed policy attached twice via groups)."""
    seen: set[int] = set()
    out = []
    for policy in policies:
        if id(policy) not in seen:
            seen.add(id(policy))
            out.append(policy)
    return tuple(out)


class Directory:
    """Users, groups, roles and keys of one account."""

    _PRINCIPAL_CACHE_LIMIT = 10_000

    def __init__(
        self,
        *,
        account_id: str,
        policies: Mapping[str, Policy],
        groups: Mapping[str, Group],
        users: Mapping[str, User],
        roles: Mapping[str, Role],
        keys: Mapping[str, AccessKey],
        key_origins: Mapping[str, str] | None = None,
        key_source: KeySource | None = None,
    ) -> None:
        self.account_id = account_id
        self.policies = dict(policies)
        self.groups = dict(groups)
        self.users = dict(users)
        self.roles = dict(roles)
        self._keys = dict(keys)
        self._key_origins = dict(key_origins or {})
        self._key_source = key_source
        self._principals: dict[tuple[str, str, str | None], Principal] = {}

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, default_account_id: str) -> Directory:
        """Build from the parsed YAML mapping; raise :class:`DirectoryError` naming the path."""
        config = load_directory(data, default_account_id=default_account_id)
        return cls(
            account_id=config.account_id,
            policies=config.policies,
            groups=config.groups,
            users=config.users,
            roles=config.roles,
            keys=config.keys,
            key_origins=config.key_origins,
        )

    def _copy(self, **changes: Any) -> Directory:
        state: dict[str, Any] = {
            "account_id": self.account_id,
            "policies": self.policies,
            "groups": self.groups,
            "users": self.users,
            "roles": self.roles,
            "keys": self._keys,
            "key_origins": self._key_origins,
            "key_source": self._key_source,
        }
        state.update(changes)
        return Directory(**state)

    def with_admin(self, access_key_id: str, secret_access_key: str) -> Directory:
        """Add the built-in ``airdock-admin`` user (AdministratorAccess) with one access key.

        The name is reserved, so a configuration file can neither define nor weaken this user.
        """
        if not access_key_id or not secret_access_key:
            raise DirectoryError("admin", "an access key id and secret are required")
        arn = f"arn:aws:iam::{self.account_id}:user/{ADMIN_USER}"
        admin = User(
            name=ADMIN_USER,
            path="/",
            arn=arn,
            user_id=unique_id("AIDA", arn),
            tags={},
            groups=(),
            policies=(ADMIN_POLICY,),
            boundary=None,
        )
        key = AccessKey(access_key_id, secret_access_key, user=ADMIN_USER)
        self._check_new_key(access_key_id, "admin")
        users = {**self.users, ADMIN_USER: admin}
        keys = {**self._keys, access_key_id: key}
        origins = {**self._key_origins, access_key_id: "admin"}
        return self._copy(users=users, keys=keys, key_origins=origins)

    def with_extra_keys(self, keys: Iterable[AccessKey]) -> Directory:
        """Add keys minted at runtime (their owners must exist in this directory)."""
        merged = dict(self._keys)
        origins = dict(self._key_origins)
        for i, key in enumerate(keys):
            where = f"extra_keys[{i}]"
            self._check_owner(key, where)
            if key.access_key_id in merged:
                raise DirectoryError(
                    where,
                    f"access key {key.access_key_id!r} is already used by "
                    f"{origins.get(key.access_key_id, 'another principal')}",
                )
            merged[key.access_key_id] = key
            origins[key.access_key_id] = where
        return self._copy(keys=merged, key_origins=origins)

    def with_key_source(self, source: KeySource | None) -> Directory:
        """Consult ``source(access_key_id)`` for keys not in the configuration (e.g. a store of
        minted keys). Configured keys always win."""
        return self._copy(key_source=source)

    def _check_new_key(self, access_key_id: str, where: str) -> None:
        if access_key_id in self._keys:
            raise DirectoryError(
                where,
                f"access key {access_key_id!r} is already used by "
                f"{self._key_origins.get(access_key_id, 'another principal')}",
            )

    def _check_owner(self, key: AccessKey, where: str) -> None:
        if key.user is not None and key.user not in self.users:
            raise DirectoryError(where, f"unknown user {key.user!r}")
        if key.role is not None and key.role not in self.roles:
            raise DirectoryError(where, f"unknown role {key.role!r}")

    # --- lookups -----------------------------------------------------------------------

    def find_key(self, access_key_id: str) -> AccessKey | None:
        key = self._keys.get(access_key_id)
        if key is None and self._key_source is not None:
            key = self._key_source(access_key_id)
            if key is not None and (
                (key.user is not None and key.user not in self.users)
                or (key.role is not None and key.role not in self.roles)
            ):
                return None  # owner no longer exists: the key is dead
        return key

    def lookup_secret(
        self, access_key_id: str, session_token: str | None, *, now: dt.datetime | None = None
    ) -> str:
        """Secret for SigV4 verification (matches :data:`iam.sigv4.SecretLookup`).

        Raises ``SigV4Error`` UnrecognizedClientException for unknown keys or a wrong/missing
        session token, ExpiredTokenException for expired temporary credentials.
        """
        key = self.find_key(access_key_id)
        unrecognized = SigV4Error(
            SigV4Error.UNRECOGNIZED, "The security token included in the request is invalid."
        )
        if key is None:
            raise unrecognized
        if key.session_token is None:
            if session_token:
                raise unrecognized
        elif session_token is None or not hmac.compare_digest(
            key.session_token.encode(), session_token.encode()
        ):
            raise unrecognized
        if key.expires_at is not None:
            moment = _aware(now or dt.datetime.now(dt.UTC))
            if moment >= _aware(key.expires_at):
                raise SigV4Error(
                    SigV4Error.EXPIRED, "The security token included in the request is expired"
                )
        return key.secret_access_key

    def principal_for_key(self, access_key_id: str) -> Principal | None:
        key = self.find_key(access_key_id)
        if key is None:
            return None
        if key.user is not None:
            return self.user_principal(key.user)
        if key.role is None:  # unreachable: AccessKey requires a user or a role
            return None
        return self.session_principal(
            key.role,
            key.session_name or access_key_id,
            session_policies=key.session_policies,
            session_tags=key.session_tags,
            issued_at=key.issued_at,
        )

    def user_principal(self, name: str) -> Principal:
        cache_key = ("user", name, None)
        cached = self._principals.get(cache_key)
        if cached is not None:
            return cached
        user = self.users[name]
        policies = list(user.policies)
        for group_name in user.groups:
            policies.extend(self.groups[group_name].policies)
        principal = Principal(
            arn=user.arn,
            type="User",
            account=self.account_id,
            name=user.name,
            user_id=user.user_id,
            tags=dict(user.tags),
            identity_policies=_dedupe(policies),
            boundary=user.boundary,
        )
        self._principals[cache_key] = principal
        return principal

    def session_principal(
        self,
        role_name: str,
        session_name: str,
        *,
        session_policies: tuple[Policy, ...] | None = None,
        session_tags: Mapping[str, str] | None = None,
        issued_at: dt.datetime | None = None,
    ) -> Principal:
        """The principal of a session of ``role_name`` (``assumed-role/ROLE/SESSION``)."""
        simple = session_policies is None and not session_tags and issued_at is None
        cache_key = ("role", role_name, session_name)
        if simple and cache_key in self._principals:
            return self._principals[cache_key]
        role = self.roles[role_name]
        principal = Principal(
            arn=f"arn:aws:sts::{self.account_id}:assumed-role/{role.name}/{session_name}",
            type="AssumedRole",
            account=self.account_id,
            name=role.name,
            user_id=f"{role.role_id}:{session_name}",
            tags={**role.tags, **(session_tags or {})},
            identity_policies=_dedupe(role.policies),
            boundary=role.boundary,
            session_policies=session_policies,
            role_arn=role.arn,
            session_name=session_name,
            token_issue_time=issued_at,
        )
        if simple:
            if len(self._principals) >= self._PRINCIPAL_CACHE_LIMIT:
                self._principals.clear()
            self._principals[cache_key] = principal
        return principal

    def __repr__(self) -> str:
        return (
            f"<Directory {self.account_id} users={len(self.users)} roles={len(self.roles)} "
            f"groups={len(self.groups)} keys={len(self._keys)}>"
        )
