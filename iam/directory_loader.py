"""Validate the directory's YAML/JSON mapping into the parts a
:class:`~iam.directory.Directory` is built from (see :meth:`Directory.from_mapping`).

Shape::

    account_id: "123456789012"                       # optional
    policies: {Name: {Version: ..., Statement: [...]}}  # customer-managed, by name
    groups: {team-a: {policies: [Name], inline_policies: {name: {...}}}}
    users:
      alice: {groups: [team-a], tags: {team: a}, policies: [Name], inline_policies: {...},
              permissions_boundary: Name, access_keys: [{access_key_id, secret_access_key}],
              path: /}
    roles:
      deployer: {trust_policy: {...}, tags: {...}, policies: [...], inline_policies: {...},
                 permissions_boundary: Name, access_keys: [...], path: /}

Every error names its path, e.g. ``users.alice.policies[1]: unknown policy 'X'``. Secrets never
appear in messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from iam.errors import DirectoryError, PolicyError
from iam.grammar import PolicyKind
from iam.identities import ADMIN_USER, BUILTIN_POLICIES, AccessKey, Group, Role, User, unique_id
from iam.policy import Policy, parse_policy

_TOP_KEYS = frozenset({"account_id", "policies", "groups", "users", "roles"})
_GROUP_KEYS = frozenset({"policies", "inline_policies", "path"})
_USER_KEYS = frozenset(
    {"groups", "tags", "policies", "inline_policies", "permissions_boundary", "access_keys", "path"}
)
_ROLE_KEYS = frozenset(
    {
        "trust_policy",
        "tags",
        "policies",
        "inline_policies",
        "permissions_boundary",
        "access_keys",
        "path",
        "description",
    }
)
_USER_KEY_FIELDS = frozenset({"access_key_id", "secret_access_key"})
_ROLE_KEY_FIELDS = frozenset({"access_key_id", "secret_access_key", "session_name"})

_ACCOUNT = re.compile(r"\d{12}", re.ASCII)
_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_PATH = re.compile(r"/(?:[\x21-\x7e]*/)?")
_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


@dataclass(frozen=True)
class DirectoryConfig:
    """A validated configuration: everything :class:`iam.directory.Directory` is built from.

    ``key_origins`` names where each access key was defined, for duplicate-key messages.
    """

    account_id: str
    policies: Mapping[str, Policy]
    groups: Mapping[str, Group]
    users: Mapping[str, User]
    roles: Mapping[str, Role]
    keys: Mapping[str, AccessKey]
    key_origins: Mapping[str, str]


def _fail(where: str, problem: str) -> DirectoryError:
    return DirectoryError(where, problem)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    """A mapping with string keys; YAML's empty ``key:`` (None) counts as empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be a mapping, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise _fail(where, f"keys must be strings, not {type(key).__name__} {key!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, f"must be a list, not {type(value).__name__}")
    return value


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise _fail(f"{prefix}{key}", f"unknown key (expected one of {sorted(allowed)})")


def _account(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        hint = " (quote it in YAML)" if isinstance(value, int) else ""
        raise _fail(where, f"must be a 12-digit string{hint}")
    return value


def _parse(doc: Any, where: str, kind: PolicyKind = "identity") -> Policy:
    if not isinstance(doc, Mapping | str):
        raise _fail(where, f"a policy must be a mapping or JSON text, not {type(doc).__name__}")
    try:
        return parse_policy(doc, kind=kind, name=where)
    except PolicyError as exc:
        raise _fail(where, str(exc)) from None


def _tags(value: Any, where: str) -> dict[str, str]:
    tags = {}
    for key, raw in _mapping(value, where).items():
        if not 1 <= len(key) <= 128:
            raise _fail(f"{where}.{key}", "tag keys must have 1 to 128 characters")
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, str | int | float):
            text = str(raw)
        else:
            raise _fail(f"{where}.{key}", "tag values must be strings")
        if len(text) > 256:
            raise _fail(f"{where}.{key}", "tag values must have at most 256 characters")
        tags[key] = text
    return tags


def _path(value: Any, where: str) -> str:
    if value is None:
        return "/"
    if not isinstance(value, str) or len(value) > 512 or not _PATH.fullmatch(value):
        raise _fail(where, "must start and end with '/' (e.g. /engineering/)")
    return value


def _entries(
    data: Mapping[str, Any],
    kind: str,
    allowed: frozenset[str],
    reserved: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(name, where, spec) for each group, user or role, its name and keys checked.

    ``reserved`` maps names the configuration may not use to the reason why.
    """
    section = f"{kind}s"
    for name, raw in _mapping(data.get(section), section).items():
        where = f"{section}.{name}"
        if reserved and name in reserved:
            raise _fail(where, reserved[name])
        if not _NAME.fullmatch(name):
            raise _fail(where, f"invalid {kind} name")
        spec = _mapping(raw, where)
        _check_keys(spec, allowed, where)
        yield name, where, spec


class _Loader:
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.policies: dict[str, Policy] = dict(BUILTIN_POLICIES)
        self.keys: dict[str, AccessKey] = {}
        self.key_origins: dict[str, str] = {}

    def managed(self, value: Any, where: str) -> tuple[Policy, ...]:
        out = []
        for i, name in enumerate(_list(value, where)):
            if not isinstance(name, str):
                raise _fail(f"{where}[{i}]", "must be a policy name")
            policy = self.policies.get(name)
            if policy is None:
                raise _fail(f"{where}[{i}]", f"unknown policy {name!r}")
            out.append(policy)
        return tuple(out)

    def inline(self, value: Any, where: str) -> tuple[Policy, ...]:
        out = []
        for name, doc in _mapping(value, where).items():
            if not _POLICY_NAME.fullmatch(name):
                raise _fail(f"{where}.{name}", "invalid policy name")
            out.append(_parse(doc, f"{where}.{name}"))
        return tuple(out)

    def boundary(self, value: Any, where: str) -> Policy | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _fail(where, "must be the name of a managed policy")
        policy = self.policies.get(value)
        if policy is None:
            raise _fail(where, f"unknown policy {value!r}")
        return policy

    def arn(self, kind: str, path: str, name: str) -> str:
        return f"arn:aws:iam::{self.account_id}:{kind}{path}{name}"

    def own_policies(self, spec: Mapping[str, Any], where: str) -> tuple[Policy, ...]:
        """The managed policies an entry attaches, then its inline ones."""
        attached = self.managed(spec.get("policies"), f"{where}.policies")
        return attached + self.inline(spec.get("inline_policies"), f"{where}.inline_policies")

    def identity(self, kind: str, name: str, where: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of :class:`~iam.identities.Identity`, for a user or a role."""
        path = _path(spec.get("path"), f"{where}.path")
        return {
            "name": name,
            "path": path,
            "arn": self.arn(kind, path, name),
            "tags": _tags(spec.get("tags"), f"{where}.tags"),
            "policies": self.own_policies(spec, where),
            "boundary": self.boundary(
                spec.get("permissions_boundary"), f"{where}.permissions_boundary"
            ),
        }

    def access_keys(self, value: Any, where: str, *, user: str | None, role: str | None) -> None:
        allowed = _ROLE_KEY_FIELDS if role else _USER_KEY_FIELDS
        for i, raw in enumerate(_list(value, where)):
            at = f"{where}[{i}]"
            entry = _mapping(raw, at)
            _check_keys(entry, allowed, at)
            akid = entry.get("access_key_id")
            secret = entry.get("secret_access_key")
            if not isinstance(akid, str) or not _ACCESS_KEY_ID.fullmatch(akid):
                raise _fail(f"{at}.access_key_id", "must be 16-128 upper-case letters and digits")
            if not isinstance(secret, str) or not secret:
                raise _fail(f"{at}.secret_access_key", "must be a non-empty string")
            session = entry.get("session_name")
            if session is not None and (
                not isinstance(session, str) or not _SESSION_NAME.fullmatch(session)
            ):
                raise _fail(f"{at}.session_name", "must be 2-64 characters of [\\w+=,.@-]")
            if akid in self.keys:
                raise _fail(
                    f"{at}.access_key_id",
                    f"access key {akid!r} is already used by {self.key_origins[akid]}",
                )
            self.keys[akid] = AccessKey(akid, secret, user=user, role=role, session_name=session)
            self.key_origins[akid] = at

    def load(self, data: Mapping[str, Any]) -> DirectoryConfig:
        for name, doc in _mapping(data.get("policies"), "policies").items():
            where = f"policies.{name}"
            if name in BUILTIN_POLICIES:
                raise _fail(where, "this name is reserved for a built-in policy")
            if not _POLICY_NAME.fullmatch(name):
                raise _fail(where, "invalid policy name")
            self.policies[name] = _parse(doc, where)

        groups: dict[str, Group] = {}
        for name, where, spec in _entries(data, "group", _GROUP_KEYS):
            path = _path(spec.get("path"), f"{where}.path")
            groups[name] = Group(
                name=name,
                arn=self.arn("group", path, name),
                policies=self.own_policies(spec, where),
            )

        users: dict[str, User] = {}
        reserved = {ADMIN_USER: "this name is reserved for the bootstrap admin"}
        for name, where, spec in _entries(data, "user", _USER_KEYS, reserved):
            member_of = []
            for i, group in enumerate(_list(spec.get("groups"), f"{where}.groups")):
                if not isinstance(group, str) or group not in groups:
                    raise _fail(f"{where}.groups[{i}]", f"unknown group {group!r}")
                member_of.append(group)
            user = self.identity("user", name, where, spec)
            users[name] = User(
                **user, user_id=unique_id("AIDA", user["arn"]), groups=tuple(member_of)
            )
            self.access_keys(spec.get("access_keys"), f"{where}.access_keys", user=name, role=None)

        roles: dict[str, Role] = {}
        for name, where, spec in _entries(data, "role", _ROLE_KEYS):
            role = self.identity("role", name, where, spec)
            trust = spec.get("trust_policy")
            roles[name] = Role(
                **role,
                role_id=unique_id("AROA", role["arn"]),
                trust_policy=None
                if trust is None
                else _parse(trust, f"{where}.trust_policy", kind="trust"),
            )
            self.access_keys(spec.get("access_keys"), f"{where}.access_keys", user=None, role=name)

        return DirectoryConfig(
            account_id=self.account_id,
            policies=self.policies,
            groups=groups,
            users=users,
            roles=roles,
            keys=self.keys,
            key_origins=self.key_origins,
        )


def load_directory(data: Mapping[str, Any] | None, *, default_account_id: str) -> DirectoryConfig:
    """Validate ``data`` into a :class:`DirectoryConfig`. ``account_id`` in the data overrides
    the default."""
    top = _mapping(data, "(top level)")
    _check_keys(top, _TOP_KEYS, "")
    if "account_id" in top and top["account_id"] is not None:
        account_id = _account(top["account_id"], "account_id")
    else:
        account_id = _account(default_account_id, "default_account_id")
    return _Loader(account_id).load(top)
