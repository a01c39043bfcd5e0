"""The decision algorithm: policy types, principals in resource policies, intersections."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iam.evaluate import Decision, evaluate
from iam.policy import parse_policy

from .conftest import (
    ACCOUNT,
    ALICE,
    ENV_ARN,
    ROLE,
    ROLE_SESSION,
    SESSION,
    USER,
    allow,
    deny,
    policy,
    request,
)

GET = "airflow:GetEnvironment"


def resource_policy(principal: Any, effect: str = "Allow", key: str = "Principal") -> Any:
    statement = {"Effect": effect, key: principal, "Action": GET, "Resource": ENV_ARN}
    return policy(statement, kind="resource")


def test_decision_is_a_string_enum() -> None:
    assert Decision.ALLOW == "Allow"
    assert json.dumps([Decision.EXPLICIT_DENY]) == '["ExplicitDeny"]'
    assert Decision.ALLOW.allowed and not Decision.IMPLICIT_DENY.allowed


def test_default_is_implicit_deny() -> None:
    assert evaluate(request()) is Decision.IMPLICIT_DENY


def test_deny_in_any_policy_type_wins() -> None:
    everything = policy(allow())
    no = policy(deny(GET))
    assert evaluate(request(), identity=[everything, no]) is Decision.EXPLICIT_DENY
    assert evaluate(request(), identity=everything, boundary=[everything, no]) is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate(request(caller=ROLE_SESSION), identity=everything, session=no) is (
        Decision.EXPLICIT_DENY
    )
    everyone_denied = resource_policy("*", effect="Deny")
    assert evaluate(request(), identity=everything, resource=everyone_denied) is (
        Decision.EXPLICIT_DENY
    )


def test_a_single_policy_may_be_passed() -> None:
    assert evaluate(request(), identity=policy(allow())) is Decision.ALLOW


def test_boundary_intersects() -> None:
    everything = policy(allow())
    gets = policy(allow("airflow:Get*"))
    assert evaluate(request(), identity=everything, boundary=gets) is Decision.ALLOW
    delete = request("airflow:DeleteEnvironment")
    assert evaluate(delete, identity=everything, boundary=gets) is Decision.IMPLICIT_DENY
    assert evaluate(request(), identity=[], boundary=everything) is Decision.IMPLICIT_DENY


def test_empty_boundary_list_means_no_boundary_but_empty_policy_denies() -> None:
    everything = policy(allow())
    assert evaluate(request(), identity=everything, boundary=[]) is Decision.ALLOW
    nothing = parse_policy({"Version": "2012-10-17", "Statement": []})
    assert evaluate(request(), identity=everything, boundary=nothing) is Decision.IMPLICIT_DENY


def test_session_policy_intersects_with_identity_and_boundary() -> None:
    everything = policy(allow())
    gets = policy(allow("airflow:Get*"))
    session = request(caller=ROLE_SESSION)
    assert evaluate(session, identity=everything, session=gets) is Decision.ALLOW
    assert evaluate(session, identity=gets, session=everything) is Decision.ALLOW
    assert evaluate(session, identity=[], session=everything) is Decision.IMPLICIT_DENY
    lists = policy(allow("airflow:List*"))
    assert evaluate(session, identity=everything, boundary=gets, session=lists) is (
        Decision.IMPLICIT_DENY
    )


@pytest.mark.parametrize(
    ("named", "caller", "boundary", "session", "expected"),
    [
        # grants to the user or session ARN ignore boundary and session policy
        (ALICE, USER, True, False, Decision.ALLOW),
        (SESSION, ROLE_SESSION, True, True, Decision.ALLOW),
        # grants to the role ARN are cut by them
        (ROLE, ROLE_SESSION, False, False, Decision.ALLOW),
        (ROLE, ROLE_SESSION, True, False, Decision.IMPLICIT_DENY),
        (ROLE, ROLE_SESSION, False, True, Decision.IMPLICIT_DENY),
        # the account principal delegates to identity policies: no grant on its own
        (ACCOUNT, USER, False, False, Decision.IMPLICIT_DENY),
        (f"arn:aws:iam::{ACCOUNT}:root", ROLE_SESSION, False, False, Decision.IMPLICIT_DENY),
        # a wildcard grant counts, but stays subject to the boundary
        ("*", USER, False, False, Decision.ALLOW),
        ("*", USER, True, False, Decision.IMPLICIT_DENY),
        # someone else
        (f"arn:aws:iam::{ACCOUNT}:user/bob", USER, False, False, Decision.IMPLICIT_DENY),
    ],
)
def test_resource_policy_principal_kinds(
    named: str, caller: Any, boundary: bool, session: bool, expected: Decision
) -> None:
    principal = "*" if named == "*" else {"AWS": named}
    s3_only = policy(allow("s3:*"))
    decision = evaluate(
        request(caller=caller),
        identity=[],
        resource=resource_policy(principal),
        boundary=s3_only if boundary else None,
        session=s3_only if session else None,
    )
    assert decision is expected


def test_resource_grant_plus_identity_grant_with_boundary() -> None:
    everything = policy(allow())
    decision = evaluate(
        request(caller=ROLE_SESSION),
        identity=everything,
        resource=resource_policy({"AWS": ROLE}),
        boundary=everything,
    )
    assert decision is Decision.ALLOW


def test_resource_deny_for_account_principal_applies() -> None:
    decision = evaluate(
        request(),
        identity=policy(allow()),
        resource=resource_policy({"AWS": ACCOUNT}, effect="Deny"),
    )
    assert decision is Decision.EXPLICIT_DENY


def test_resource_deny_for_other_principal_does_not_apply() -> None:
    other = resource_policy({"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"}, effect="Deny")
    assert evaluate(request(), identity=policy(allow()), resource=other) is Decision.ALLOW


@pytest.mark.parametrize(
    ("excluded", "caller", "expected"),
    [
        ([ALICE, ACCOUNT], USER, Decision.ALLOW),
        ([ALICE], USER, Decision.EXPLICIT_DENY),
        ([SESSION, ROLE, ACCOUNT], ROLE_SESSION, Decision.ALLOW),
        ([ROLE, ACCOUNT], ROLE_SESSION, Decision.EXPLICIT_DENY),
        ([f"arn:aws:iam::{ACCOUNT}:user/bob", ACCOUNT], USER, Decision.EXPLICIT_DENY),
    ],
)
def test_not_principal_deny(excluded: list[str], caller: Any, expected: Decision) -> None:
    guard = resource_policy({"AWS": excluded}, effect="Deny", key="NotPrincipal")
    assert evaluate(request(caller=caller), identity=policy(allow()), resource=guard) is expected


def test_trust_policy_as_resource_policy() -> None:
    trust = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": ALICE}, "Action": "sts:AssumeRole"}
            ],
        },
        kind="trust",
    )
    assume = request("sts:AssumeRole", ROLE)
    assert evaluate(assume, resource=trust) is Decision.ALLOW
    assert evaluate(request("sts:AssumeRole", ROLE, caller=ROLE_SESSION), resource=trust) is (
        Decision.IMPLICIT_DENY
    )


def test_not_action_and_not_resource() -> None:
    statements = [
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "*",
            "NotResource": f"arn:aws:airflow:*:{ACCOUNT}:environment/team-a-*",
        },
    ]
    p = policy(*statements)
    assert evaluate(request(), identity=p) is Decision.ALLOW
    other = request(resource=f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/team-b-x")
    assert evaluate(other, identity=p) is Decision.EXPLICIT_DENY
    assert evaluate(request("iam:ListUsers", resource="*"), identity=p) is Decision.EXPLICIT_DENY
    star = policy({"Effect": "Allow", "Action": "*", "NotResource": "*"})
    assert evaluate(request(), identity=star) is Decision.IMPLICIT_DENY


def test_action_index_is_per_action() -> None:
    p = policy(allow("airflow:Get*"), deny("airflow:Delete*"))
    for _ in range(3):
        assert evaluate(request(), identity=p) is Decision.ALLOW
        assert evaluate(request("airflow:DeleteEnvironment"), identity=p) is Decision.EXPLICIT_DENY
        assert evaluate(request("airflow:ListEnvironments", "*"), identity=p) is (
            Decision.IMPLICIT_DENY
        )
    allows, denies = (
        p.rules_for("airflow:getenvironment")[1],
        p.rules_for("airflow:getenvironment")[0],
    )
    assert len(allows) == 1 and not denies


def test_conditions_decide_after_resource() -> None:
    guarded = policy(allow(GET, ENV_ARN, Condition={"StringEquals": {"aws:username": "alice"}}))
    assert evaluate(request(context={"aws:username": "alice"}), identity=guarded) is Decision.ALLOW
    assert evaluate(request(context={"aws:username": "bob"}), identity=guarded) is (
        Decision.IMPLICIT_DENY
    )


def test_policies_in_the_wrong_slot_are_refused() -> None:
    identity = policy(allow())
    resource = resource_policy("*")
    with pytest.raises(ValueError, match="not a resource-based policy"):
        evaluate(request(), resource=identity)
    with pytest.raises(ValueError, match="not an identity policy"):
        evaluate(request(), identity=resource)
    with pytest.raises(ValueError, match="not an identity policy"):
        evaluate(request(), identity=identity, boundary=resource)
