"""The principal directory: parsing, validation errors, keys, principals and authorization."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from iam.authorize import (
    access_denied_message,
    authorize,
    authorize_assume_role,
    build_request,
)
from iam.directory import Directory
from iam.errors import DirectoryError, SigV4Error
from iam.evaluate import Decision
from iam.identities import ADMIN_USER, AccessKey
from iam.policy import parse_policy

ACCT = "123456789012"
ENV = f"arn:aws:airflow:us-east-1:{ACCT}:environment"

CONFIG = f"""
account_id: "{ACCT}"
policies:
  TeamAbac:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: [airflow:GetEnvironment, airflow:UpdateEnvironment]
        Resource: "arn:aws:airflow:*:{ACCT}:environment/*"
        Condition:
          StringEquals: {{aws:ResourceTag/team: "${{aws:PrincipalTag/team}}"}}
  ListAll:
    Version: "2012-10-17"
    Statement: {{Effect: Allow, Action: airflow:ListEnvironments, Resource: "*"}}
  ReadOnlyBoundary:
    Version: "2012-10-17"
    Statement: {{Effect: Allow, Action: ["airflow:Get*", "airflow:List*"], Resource: "*"}}
groups:
  team-a:
    policies: [TeamAbac, ListAll]
    inline_policies:
      NoDelete:
        Version: "2012-10-17"
        Statement: {{Effect: Deny, Action: airflow:DeleteEnvironment, Resource: "*"}}
users:
  alice:
    groups: [team-a]
    tags: {{team: a}}
    policies: [ListAll]
    access_keys:
      - {{access_key_id: AKIAALICE00000000001, secret_access_key: alice-secret}}
  carol:
    path: /contractors/
    groups: [team-a]
    tags: {{team: a}}
    permissions_boundary: ReadOnlyBoundary
    access_keys:
      - {{access_key_id: AKIACAROL00000000001, secret_access_key: carol-secret}}
roles:
  deployer:
    trust_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: {{AWS: "arn:aws:iam::{ACCT}:user/alice"}}
          Action: sts:AssumeRole
    tags: {{team: b}}
    policies: [TeamAbac]
    inline_policies:
      Delete:
        Version: "2012-10-17"
        Statement: {{Effect: Allow, Action: airflow:DeleteEnvironment, Resource: "*"}}
    access_keys:
      - {{access_key_id: AKIADEPLOYER00000001, secret_access_key: deployer-secret,
          session_name: ci}}
"""


@pytest.fixture()
def directory() -> Directory:
    return Directory.from_mapping(yaml.safe_load(CONFIG), default_account_id="000000000000")


def test_users_and_arns(directory: Directory) -> None:
    alice = directory.principal_for_key("AKIAALICE00000000001")
    assert alice is not None
    assert alice.arn == f"arn:aws:iam::{ACCT}:user/alice"
    assert alice.type == "User" and alice.role_arn is None
    assert alice.user_id.startswith("AIDA") and len(alice.user_id) == 21
    # own ListAll + group's TeamAbac, ListAll (deduplicated) and inline NoDelete
    assert len(alice.identity_policies) == 3
    carol = directory.principal_for_key("AKIACAROL00000000001")
    assert carol is not None and carol.arn == f"arn:aws:iam::{ACCT}:user/contractors/carol"
    assert carol.boundary is directory.policies["ReadOnlyBoundary"]


def test_role_key_is_a_session(directory: Directory) -> None:
    session = directory.principal_for_key("AKIADEPLOYER00000001")
    assert session is not None
    assert session.arn == f"arn:aws:sts::{ACCT}:assumed-role/deployer/ci"
    assert session.role_arn == f"arn:aws:iam::{ACCT}:role/deployer"
    assert session.type == "AssumedRole"
    keys = session.context_keys
    assert keys["aws:PrincipalArn"] == session.role_arn
    assert keys["aws:userid"].startswith("AROA") and keys["aws:userid"].endswith(":ci")
    assert "aws:username" not in keys
    assert keys["aws:PrincipalTag/team"] == "b"
    assert directory.roles["deployer"].trust_policy is not None


def test_context_keys_of_a_user(directory: Directory) -> None:
    alice = directory.principal_for_key("AKIAALICE00000000001")
    assert alice is not None
    assert alice.context_keys == {
        "aws:userid": alice.user_id,
        "aws:PrincipalArn": alice.arn,
        "aws:PrincipalAccount": ACCT,
        "aws:PrincipalType": "User",
        "aws:username": "alice",
        "aws:PrincipalTag/team": "a",
    }


def test_unknown_key(directory: Directory) -> None:
    assert directory.principal_for_key("AKIANOBODY0000000000") is None
    with pytest.raises(SigV4Error) as info:
        directory.lookup_secret("AKIANOBODY0000000000", None)
    assert info.value.code == "UnrecognizedClientException"


def test_lookup_secret(directory: Directory) -> None:
    assert directory.lookup_secret("AKIAALICE00000000001", None) == "alice-secret"
    with pytest.raises(SigV4Error) as info:
        directory.lookup_secret("AKIAALICE00000000001", "unexpected-token")
    assert info.value.code == "UnrecognizedClientException"


def test_authorize_abac(directory: Directory) -> None:
    alice = directory.principal_for_key("AKIAALICE00000000001")
    assert alice is not None
    own = {"aws:ResourceTag/team": "a"}
    assert authorize(alice, "airflow:GetEnvironment", f"{ENV}/a1", own) is Decision.ALLOW
    other = {"aws:ResourceTag/team": "b"}
    assert authorize(alice, "airflow:GetEnvironment", f"{ENV}/b1", other) is Decision.IMPLICIT_DENY
    assert authorize(alice, "airflow:ListEnvironments", "*") is Decision.ALLOW
    assert authorize(alice, "airflow:DeleteEnvironment", f"{ENV}/a1", own) is (
        Decision.EXPLICIT_DENY
    )


def test_authorize_ignores_spoofed_principal_keys(directory: Directory) -> None:
    alice = directory.principal_for_key("AKIAALICE00000000001")
    assert alice is not None
    spoof = {"aws:ResourceTag/team": "b", "AWS:PrincipalTag/Team": "b", "aws:username": "x"}
    assert authorize(alice, "airflow:GetEnvironment", f"{ENV}/b1", spoof) is Decision.IMPLICIT_DENY
    request = build_request(alice, "airflow:GetEnvironment", f"{ENV}/b1", spoof)
    assert request.context["aws:principaltag/team"] == "a"
    assert request.context["aws:username"] == "alice"


def test_boundary_limits_user(directory: Directory) -> None:
    carol = directory.principal_for_key("AKIACAROL00000000001")
    assert carol is not None
    own = {"aws:ResourceTag/team": "a"}
    assert authorize(carol, "airflow:GetEnvironment", f"{ENV}/a1", own) is Decision.ALLOW
    assert authorize(carol, "airflow:UpdateEnvironment", f"{ENV}/a1", own) is (
        Decision.IMPLICIT_DENY
    )


def test_resource_policies_through_authorize(directory: Directory) -> None:
    carol = directory.principal_for_key("AKIACAROL00000000001")
    assert carol is not None
    grant = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": carol.arn},
                    "Action": "airflow:UpdateEnvironment",
                    "Resource": f"{ENV}/a1",
                }
            ],
        },
        kind="resource",
    )
    decision = authorize(carol, "airflow:UpdateEnvironment", f"{ENV}/a1", {}, [grant])
    assert decision is Decision.ALLOW


def test_access_denied_message(directory: Directory) -> None:
    alice = directory.principal_for_key("AKIAALICE00000000001")
    assert alice is not None
    message = access_denied_message(
        alice, "airflow:GetEnvironment", f"{ENV}/b1", Decision.IMPLICIT_DENY
    )
    assert message.startswith(
        f"User: {alice.arn} is not authorized to perform: airflow:GetEnvironment"
    )
    assert "explicit deny" in access_denied_message(alice, "a:b", "*", Decision.EXPLICIT_DENY)


# --- bootstrap admin ----------------------------------------------------------------------------


def test_with_admin(directory: Directory) -> None:
    with_admin = directory.with_admin("AKIAADMIN00000000001", "admin-secret")
    admin = with_admin.principal_for_key("AKIAADMIN00000000001")
    assert admin is not None and admin.name == ADMIN_USER
    assert admin.arn == f"arn:aws:iam::{ACCT}:user/{ADMIN_USER}"
    assert authorize(admin, "iam:PassRole", "arn:aws:iam::1:role/x") is Decision.ALLOW
    assert authorize(admin, "airflow:DeleteEnvironment", f"{ENV}/x") is Decision.ALLOW
    assert directory.principal_for_key("AKIAADMIN00000000001") is None  # original unchanged


def test_admin_cannot_be_defined_or_weakened_by_config() -> None:
    with pytest.raises(DirectoryError, match=r"^users\.airdock-admin: .*reserved"):
        Directory.from_mapping({"users": {ADMIN_USER: {}}}, default_account_id=ACCT)
    with pytest.raises(DirectoryError, match=r"^policies\.AdministratorAccess: .*reserved"):
        Directory.from_mapping(
            {"policies": {"AdministratorAccess": {"Statement": []}}}, default_account_id=ACCT
        )


def test_admin_key_collision(directory: Directory) -> None:
    with pytest.raises(DirectoryError, match=r"already used by users\.alice\.access_keys"):
        directory.with_admin("AKIAALICE00000000001", "x")


def test_builtin_admin_policy_can_be_attached() -> None:
    d = Directory.from_mapping(
        {"users": {"root": {"policies": ["AdministratorAccess"]}}}, default_account_id=ACCT
    )
    assert (
        authorize(d.user_principal("root"), "s3:DeleteBucket", "arn:aws:s3:::b") is Decision.ALLOW
    )


# --- minted keys -----------------------------------------------------------------------------


def test_with_extra_keys_and_session_tokens(directory: Directory) -> None:
    issued = dt.datetime(2026, 1, 15, 8, tzinfo=dt.UTC)
    session_policy = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "airflow:Get*", "Resource": "*"},
        }
    )
    minted = AccessKey(
        "ASIAMINTED0000000001",
        "minted-secret",
        role="deployer",
        session_name="alice",
        session_token="tok",
        issued_at=issued,
        expires_at=issued + dt.timedelta(hours=1),
        session_policies=(session_policy,),
    )
    d = directory.with_extra_keys([minted])
    inside = issued + dt.timedelta(minutes=5)
    assert d.lookup_secret("ASIAMINTED0000000001", "tok", now=inside) == "minted-secret"
    for token in (None, "other"):
        with pytest.raises(SigV4Error) as info:
            d.lookup_secret("ASIAMINTED0000000001", token, now=inside)
        assert info.value.code == "UnrecognizedClientException"
    with pytest.raises(SigV4Error) as info:
        d.lookup_secret("ASIAMINTED0000000001", "tok", now=issued + dt.timedelta(hours=2))
    assert info.value.code == "ExpiredTokenException"
    assert "minted-secret" not in info.value.message

    session = d.principal_for_key("ASIAMINTED0000000001")
    assert session is not None and session.session_policies == (session_policy,)
    assert session.context_keys["aws:TokenIssueTime"] == "2026-01-15T08:00:00Z"
    own = {"aws:ResourceTag/team": "b"}
    assert authorize(session, "airflow:GetEnvironment", f"{ENV}/b1", own) is Decision.ALLOW
    assert authorize(session, "airflow:DeleteEnvironment", f"{ENV}/b1", own) is (
        Decision.IMPLICIT_DENY
    )


def test_extra_keys_validated(directory: Directory) -> None:
    with pytest.raises(DirectoryError, match=r"^extra_keys\[0\]: unknown user 'zed'"):
        directory.with_extra_keys([AccessKey("AKIAZED0000000000001", "s", user="zed")])
    with pytest.raises(DirectoryError, match=r"^extra_keys\[0\]: access key .* already used"):
        directory.with_extra_keys([AccessKey("AKIAALICE00000000001", "s", user="alice")])
    with pytest.raises(ValueError, match="exactly one user or role"):
        AccessKey("AKIAX000000000000001", "s")


def test_key_source(directory: Directory) -> None:
    store = {
        "ASIASTORE0000000001": AccessKey("ASIASTORE0000000001", "s", user="alice"),
        "ASIAGONE00000000001": AccessKey("ASIAGONE00000000001", "s", user="deleted-user"),
    }
    d = directory.with_key_source(store.get)
    assert d.principal_for_key("ASIASTORE0000000001") is not None
    assert d.principal_for_key("ASIAGONE00000000001") is None
    assert d.lookup_secret("AKIAALICE00000000001", None) == "alice-secret"


def test_repr_has_no_secrets(directory: Directory) -> None:
    key = AccessKey("AKIAALICE00000000001", "alice-secret", user="alice", session_token="tok")
    assert "alice-secret" not in repr(key) and "tok" not in repr(key)
    assert "secret" not in repr(directory)


# --- validation errors ------------------------------------------------------------------------


def _error(data: Any, default_account_id: str = ACCT) -> str:
    with pytest.raises(DirectoryError) as info:
        Directory.from_mapping(data, default_account_id=default_account_id)
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "(top level): must be a mapping"),
        ({"nope": 1}, "nope: unknown key"),
        ({"account_id": 123456789012}, "account_id: must be a 12-digit string (quote it in YAML)"),
        ({"account_id": "12345"}, "account_id: must be a 12-digit string"),
        ({"policies": []}, "policies: must be a mapping"),
        (
            {"policies": {"Bad": {"Statement": [{"Effect": "Maybe"}]}}},
            "policies.Bad: Statement[0].Effect: must be",
        ),
        ({"policies": {"Bad": 3}}, "policies.Bad: a policy must be a mapping or JSON text"),
        ({"policies": {"Bad": "{"}}, "policies.Bad: (document): not valid JSON"),
        ({"policies": {"bad name!": {}}}, "policies.bad name!: invalid policy name"),
        ({"groups": {"g": {"policies": ["X"]}}}, "groups.g.policies[0]: unknown policy 'X'"),
        ({"groups": {"g": {"extra": 1}}}, "groups.g.extra: unknown key"),
        (
            {"users": {"alice": {"policies": ["AdministratorAccess", "X"]}}},
            "users.alice.policies[1]: unknown policy 'X'",
        ),
        ({"users": {"alice": {"groups": ["nope"]}}}, "users.alice.groups[0]: unknown group 'nope'"),
        ({"users": {"alice": {"groups": "team"}}}, "users.alice.groups: must be a list"),
        (
            {"users": {"alice": {"permissions_boundary": "X"}}},
            "users.alice.permissions_boundary: unknown policy 'X'",
        ),
        (
            {"users": {"alice": {"permissions_boundary": ["X"]}}},
            "users.alice.permissions_boundary: must be the name",
        ),
        (
            {"users": {"alice": {"path": "no-slash"}}},
            "users.alice.path: must start and end with '/'",
        ),
        (
            {"users": {"alice": {"tags": {"t": [1]}}}},
            "users.alice.tags.t: tag values must be strings",
        ),
        ({"users": {"a b": {}}}, "users.a b: invalid user name"),
        (
            {
                "users": {
                    "alice": {
                        "inline_policies": {
                            "p": {"Statement": {"Effect": "Allow", "Action": "a:b"}}
                        }
                    }
                }
            },
            "users.alice.inline_policies.p: Statement: missing Resource",
        ),
        (
            {
                "users": {
                    "alice": {"access_keys": [{"access_key_id": "short", "secret_access_key": "s"}]}
                }
            },
            "users.alice.access_keys[0].access_key_id: must be",
        ),
        (
            {"users": {"alice": {"access_keys": [{"access_key_id": "AKIA0000000000000001"}]}}},
            "users.alice.access_keys[0].secret_access_key: must be a non-empty string",
        ),
        (
            {
                "users": {
                    "alice": {
                        "access_keys": [
                            {
                                "access_key_id": "AKIA0000000000000001",
                                "secret_access_key": "s",
                                "session_name": "x",
                            }
                        ]
                    }
                }
            },
            "users.alice.access_keys[0].session_name: unknown key",
        ),
        (
            {
                "roles": {
                    "r": {
                        "trust_policy": {
                            "Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}
                        }
                    }
                }
            },
            "roles.r.trust_policy: Statement: missing Principal (trust policy)",
        ),
        (
            {
                "roles": {
                    "r": {
                        "access_keys": [
                            {
                                "access_key_id": "AKIA0000000000000001",
                                "secret_access_key": "s",
                                "session_name": "!",
                            }
                        ]
                    }
                }
            },
            "roles.r.access_keys[0].session_name: must be",
        ),
    ],
)
def test_validation_errors_name_the_path(data: Any, expected: str) -> None:
    assert _error(data).startswith(expected)


def test_duplicate_access_key_names_both_places() -> None:
    key = {"access_key_id": "AKIA0000000000000001", "secret_access_key": "top-secret"}
    message = _error(
        {"users": {"a": {"access_keys": [key]}}, "roles": {"r": {"access_keys": [key]}}}
    )
    assert message.startswith(
        "roles.r.access_keys[0].access_key_id: access key 'AKIA0000000000000001'"
    )
    assert "users.a.access_keys[0]" in message
    assert "top-secret" not in message


def test_default_account_and_empty_sections() -> None:
    d = Directory.from_mapping({"users": {"bob": None}, "groups": None}, default_account_id=ACCT)
    assert d.account_id == ACCT
    assert d.user_principal("bob").identity_policies == ()
    assert _error({}, default_account_id="nope").startswith("default_account_id: must be")
    assert Directory.from_mapping(None, default_account_id=ACCT).users == {}


def test_assume_role_follows_the_trust_policy(directory: Directory) -> None:
    role = directory.roles["deployer"]
    alice = directory.user_principal("alice")
    carol = directory.user_principal("carol")
    assert authorize_assume_role(alice, role.arn, role.trust_policy) is Decision.ALLOW
    assert authorize_assume_role(carol, role.arn, role.trust_policy) is Decision.IMPLICIT_DENY
    assert authorize_assume_role(alice, role.arn, None) is Decision.IMPLICIT_DENY


def test_recursive_yaml_aliases_are_rejected_not_looped() -> None:
    data = yaml.safe_load("policies:\n  P: &p\n    Version: '2012-10-17'\n    Statement: [*p]\n")
    assert _error(data).startswith("policies.P: Statement[0]: unknown element 'Version'")
    data = yaml.safe_load("users:\n  alice: &u\n    tags: *u\n")
    assert _error(data).startswith("users.alice.tags.tags: tag values must be strings")
