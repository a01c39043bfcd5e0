"""Policy variables in Resource and in String/Arn conditions."""

from __future__ import annotations

import pytest

from iam.errors import PolicyError
from iam.evaluate import Decision
from iam.variables import Lit, Template, Var, parse_template

from .conftest import allow, decide, policy, when

BUCKET = "arn:aws:s3:::home"


def test_parse_template() -> None:
    parsed = parse_template("a-${aws:PrincipalTag/Team, 'x y'}-${*}", enabled=True)
    assert isinstance(parsed, Template)
    assert parsed.pieces == ("a-", Var("aws:principaltag/team", "x y"), "-", Lit("*"))
    assert parse_template("plain", enabled=True) == "plain"
    assert parse_template("${aws:username}", enabled=False) == "${aws:username}"
    assert parse_template("${not valid!, x}", enabled=True) == "${not valid!, x}"


def s3(
    resource: str, key: str, context: dict[str, object], version: str | None = "2012-10-17"
) -> Decision:
    return decide(
        allow("s3:GetObject", resource),
        action="s3:GetObject",
        resource=key,
        context=context,
        version=version,
    )


def test_resource_variable() -> None:
    ctx = {"aws:username": "alice"}
    assert s3(f"{BUCKET}/${{aws:username}}/*", f"{BUCKET}/alice/x", ctx) is Decision.ALLOW
    assert s3(f"{BUCKET}/${{aws:username}}/*", f"{BUCKET}/bob/x", ctx) is Decision.IMPLICIT_DENY


def test_variable_key_is_case_insensitive() -> None:
    ctx = {"aws:PrincipalTag/team": "red"}
    assert s3(f"{BUCKET}/${{AWS:PRINCIPALTAG/Team}}/*", f"{BUCKET}/red/x", ctx) is Decision.ALLOW


def test_unresolved_resource_variable_matches_nothing() -> None:
    assert s3(f"{BUCKET}/${{aws:username}}*", f"{BUCKET}/x", {}) is Decision.IMPLICIT_DENY


def test_unresolved_variable_in_not_resource_excludes_nothing() -> None:
    decision = decide(
        allow("s3:*"),
        {"Effect": "Deny", "Action": "s3:*", "NotResource": f"{BUCKET}/${{aws:username}}/*"},
        action="s3:GetObject",
        resource=f"{BUCKET}/alice/x",
    )
    assert decision is Decision.EXPLICIT_DENY


def test_default_value_used_only_when_key_absent() -> None:
    pattern = f"{BUCKET}/${{aws:PrincipalTag/team, 'shared'}}/*"
    assert s3(pattern, f"{BUCKET}/shared/x", {}) is Decision.ALLOW
    assert s3(pattern, f"{BUCKET}/red/x", {"aws:PrincipalTag/team": "red"}) is Decision.ALLOW
    assert (
        s3(pattern, f"{BUCKET}/shared/x", {"aws:PrincipalTag/team": "red"})
        is Decision.IMPLICIT_DENY
    )


def test_multivalued_key_cannot_be_a_variable() -> None:
    assert s3(f"{BUCKET}/${{k:list}}", f"{BUCKET}/a", {"k:list": ["a"]}) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("version", ["2008-10-17", None])
def test_old_or_missing_version_keeps_variables_literal(version: str | None) -> None:
    ctx = {"aws:username": "alice"}
    pattern = f"{BUCKET}/${{aws:username}}/*"
    assert s3(pattern, f"{BUCKET}/alice/x", ctx, version) is Decision.IMPLICIT_DENY
    assert s3(pattern, f"{BUCKET}/${{aws:username}}/x", ctx, version) is Decision.ALLOW


def test_special_literals() -> None:
    assert s3(f"{BUCKET}/a${{*}}b", f"{BUCKET}/a*b", {}) is Decision.ALLOW
    assert s3(f"{BUCKET}/a${{*}}b", f"{BUCKET}/aXb", {}) is Decision.IMPLICIT_DENY
    assert s3(f"{BUCKET}/a${{?}}", f"{BUCKET}/a?", {}) is Decision.ALLOW
    assert s3(f"{BUCKET}/a${{?}}", f"{BUCKET}/ab", {}) is Decision.IMPLICIT_DENY
    assert s3(f"{BUCKET}/${{$}}x", f"{BUCKET}/$x", {}) is Decision.ALLOW


def test_substituted_values_are_literal() -> None:
    ctx = {"aws:PrincipalTag/team": "a*"}
    assert s3(f"{BUCKET}/${{aws:PrincipalTag/team}}", f"{BUCKET}/a*", ctx) is Decision.ALLOW
    assert (
        s3(f"{BUCKET}/${{aws:PrincipalTag/team}}", f"{BUCKET}/abc", ctx) is Decision.IMPLICIT_DENY
    )
    like = {"StringLike": {"k:v": "${aws:PrincipalTag/team}"}}
    assert when(like, {**ctx, "k:v": "a*"})
    assert not when(like, {**ctx, "k:v": "abc"})


def test_variables_only_in_resource_id_part() -> None:
    ctx = {"aws:PrincipalAccount": "111122223333"}
    pattern = "arn:aws:s3:${aws:PrincipalAccount}::b/x"
    assert s3(pattern, "arn:aws:s3:111122223333::b/x", ctx) is Decision.IMPLICIT_DENY


def test_condition_variables() -> None:
    abac = {"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}
    assert when(abac, {"aws:ResourceTag/team": "a", "aws:PrincipalTag/team": "a"})
    assert not when(abac, {"aws:ResourceTag/team": "b", "aws:PrincipalTag/team": "a"})
    assert not when(abac, {"aws:ResourceTag/team": "a"})
    ignore_case = {"StringEqualsIgnoreCase": {"k:v": "${aws:username}"}}
    assert when(ignore_case, {"k:v": "ALICE", "aws:username": "alice"})
    arn = {"ArnLike": {"aws:SourceArn": "arn:aws:iam::${aws:PrincipalAccount}:user/*"}}
    assert when(arn, {"aws:SourceArn": "arn:aws:iam::1:user/x", "aws:PrincipalAccount": "1"})
    assert not when(arn, {"aws:SourceArn": "arn:aws:iam::2:user/x", "aws:PrincipalAccount": "1"})


def test_unresolved_variable_in_negated_condition_matches() -> None:
    condition = {"StringNotEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}
    assert when(condition, {"aws:ResourceTag/team": "a"})
    both = {"StringNotEquals": {"aws:ResourceTag/team": ["${aws:PrincipalTag/team}", "a"]}}
    assert not when(both, {"aws:ResourceTag/team": "a"})


def test_default_in_condition_variable() -> None:
    decision = decide(
        allow(Condition={"StringEquals": {"k:v": "${k:missing, 'fallback'}"}}),
        context={"k:v": "fallback"},
    )
    assert decision is Decision.ALLOW


def test_no_variables_in_numeric_date_or_ip_conditions() -> None:
    for operator in ("NumericEquals", "DateEquals", "IpAddress"):
        with pytest.raises(PolicyError, match=operator):
            policy(allow(Condition={operator: {"k:v": "${aws:EpochTime}"}}))
