"""Condition operators: every family, IfExists, set qualifiers, negation and absent keys."""

from __future__ import annotations

import base64

import pytest

from iam.comparisons import parse_date
from iam.evaluate import Decision

from .conftest import allow, decide, deny, when

# --- String ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "policy_value", "request_value", "expected"),
    [
        ("StringEquals", "team-a", "team-a", True),
        ("StringEquals", "team-a", "Team-A", False),
        ("StringEquals", "team-*", "team-a", False),
        ("StringNotEquals", "team-a", "team-b", True),
        ("StringNotEquals", "team-a", "team-a", False),
        ("StringEqualsIgnoreCase", "TEAM-A", "team-a", True),
        ("StringNotEqualsIgnoreCase", "TEAM-A", "team-a", False),
        ("StringNotEqualsIgnoreCase", "TEAM-A", "team-b", True),
        ("StringLike", "team-*", "team-a", True),
        ("StringLike", "team-?", "team-ab", False),
        ("StringLike", "Team-*", "team-a", False),
        ("StringLike", "[team]*", "[team]-a", True),
        ("StringNotLike", "team-*", "other", True),
        ("StringNotLike", "team-*", "team-a", False),
    ],
)
def test_string_family(
    operator: str, policy_value: str, request_value: str, expected: bool
) -> None:
    assert when({operator: {"k:v": policy_value}}, {"k:v": request_value}) is expected


def test_values_of_one_key_or_together() -> None:
    assert when({"StringEquals": {"k:v": ["a", "b"]}}, {"k:v": "b"})


def test_negated_values_combine_as_nor() -> None:
    condition = {"StringNotEquals": {"k:v": ["a", "b"]}}
    assert not when(condition, {"k:v": "a"})
    assert not when(condition, {"k:v": "b"})
    assert when(condition, {"k:v": "c"})


def test_keys_and_operators_and_together() -> None:
    condition = {"StringEquals": {"k:a": "1", "k:b": "2"}, "StringLike": {"k:c": "x*"}}
    assert when(condition, {"k:a": "1", "k:b": "2", "k:c": "xy"})
    assert not when(condition, {"k:a": "1", "k:b": "3", "k:c": "xy"})
    assert not when(condition, {"k:a": "1", "k:b": "2", "k:c": "y"})


def test_key_names_are_case_insensitive_values_are_not() -> None:
    assert when({"StringEquals": {"AWS:ResourceTag/Team": "a"}}, {"aws:resourcetag/team": "a"})
    assert not when({"StringEquals": {"aws:ResourceTag/team": "a"}}, {"aws:ResourceTag/team": "A"})


# --- absent keys, IfExists, Null --------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),
        ("StringNotEquals", True),
        ("StringLike", False),
        ("StringNotLike", True),
        ("NumericLessThan", False),
        ("NumericNotEquals", True),
        ("DateLessThan", False),
        ("DateNotEquals", True),
        ("IpAddress", False),
        ("NotIpAddress", True),
        ("ArnLike", False),
        ("ArnNotLike", True),
        ("StringEqualsIfExists", True),
        ("StringNotEqualsIfExists", True),
        ("NumericLessThanIfExists", True),
        ("BoolIfExists", True),
        ("IpAddressIfExists", True),
    ],
)
def test_absent_key(operator: str, expected: bool) -> None:
    values = {
        "String": "x",
        "Numeric": "1",
        "Date": "2026-01-01T00:00:00Z",
        "IpAddress": "10.0.0.0/8",
        "NotIpAddress": "10.0.0.0/8",
        "Arn": "arn:aws:iam::1:user/x",
        "Bool": "true",
    }
    value = next(v for prefix, v in values.items() if operator.startswith(prefix))
    assert when({operator: {"missing:key": value}}, {}) is expected


def test_if_exists_applies_the_operator_when_present() -> None:
    condition = {"StringLikeIfExists": {"ec2:InstanceType": ["t2.*"]}}
    assert when(condition, {"ec2:InstanceType": "t2.micro"})
    assert not when(condition, {"ec2:InstanceType": "m5.large"})


def test_if_exists_deny_still_fires_when_key_missing() -> None:
    decision = decide(
        allow(),
        deny(Condition={"StringNotEqualsIfExists": {"aws:ResourceTag/team": "a"}}),
        context={},
    )
    assert decision is Decision.EXPLICIT_DENY


@pytest.mark.parametrize(
    ("value", "context", "expected"),
    [
        ("true", {}, True),
        ("true", {"k:x": ""}, True),
        ("true", {"k:x": []}, True),
        ("true", {"k:x": "v"}, False),
        ("false", {"k:x": "v"}, True),
        ("false", {"k:x": ["a"]}, True),
        ("false", {}, False),
        (True, {}, True),
    ],
)
def test_null(value: object, context: dict[str, object], expected: bool) -> None:
    assert when({"Null": {"k:x": value}}, context) is expected


# --- Numeric, Date, Bool, Binary, IP --------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "policy_value", "request_value", "expected"),
    [
        ("NumericEquals", "60", "60", True),
        ("NumericEquals", "60", "60.0", True),
        ("NumericEquals", 60, "61", False),
        ("NumericNotEquals", "60", "61", True),
        ("NumericLessThan", "60", "59", True),
        ("NumericLessThan", "60", "60", False),
        ("NumericLessThanEquals", "60", "60", True),
        ("NumericGreaterThan", 900, "901", True),
        ("NumericGreaterThan", 900, "900", False),
        ("NumericGreaterThanEquals", "1.5", "1.5", True),
        ("NumericLessThan", "60", "not-a-number", False),
        ("NumericLessThan", "-1e3", "-1001", True),
    ],
)
def test_numeric(operator: str, policy_value: object, request_value: str, expected: bool) -> None:
    assert when({operator: {"k:n": policy_value}}, {"k:n": request_value}) is expected


@pytest.mark.parametrize(
    ("operator", "policy_value", "request_value", "expected"),
    [
        ("DateEquals", "2026-01-15T12:00:00Z", "2026-01-15T12:00:00Z", True),
        ("DateEquals", "2026-01-15T12:00:00Z", "2026-01-15T13:00:00+01:00", True),
        ("DateNotEquals", "2026-01-15T12:00:00Z", "2026-01-15T12:00:01Z", True),
        ("DateLessThan", "2026-06-30T23:59:59Z", "2026-01-15T12:00:00Z", True),
        ("DateLessThan", "2026-01-01", "2026-01-15T12:00:00Z", False),
        ("DateLessThanEquals", "2026-01-15T12:00:00Z", "2026-01-15T12:00:00Z", True),
        ("DateGreaterThan", "2026-01-01T00:00:00Z", "2026-01-15T12:00:00Z", True),
        ("DateGreaterThanEquals", "1767225600", "1768478400", True),
        ("DateGreaterThan", "2026-01-01T00:00:00Z", "1768478400", True),
        ("DateLessThan", "2026-01-01T00:00:00.500Z", "2026-01-01T00:00:00.250Z", True),
        ("DateLessThan", "2026-01-01T00:00:00Z", "garbage", False),
    ],
)
def test_date(operator: str, policy_value: str, request_value: str, expected: bool) -> None:
    assert (
        when({operator: {"aws:CurrentTime": policy_value}}, {"aws:CurrentTime": request_value})
        is expected
    )


def test_date_parsing() -> None:
    assert parse_date("2026-01-15T12:00:00Z") == parse_date("1768478400")
    assert parse_date("2026-01") == parse_date("2026-01-01T00:00:00Z")
    assert parse_date("2026-02-30") is None
    assert parse_date("2026-01-15T12:00Z") == parse_date("2026-01-15T12:00:00Z")


@pytest.mark.parametrize(
    ("policy_value", "request_value", "expected"),
    [
        ("true", "true", True),
        ("false", "true", False),
        (True, "TRUE", True),
        ("false", "false", True),
    ],
)
def test_bool(policy_value: object, request_value: str, expected: bool) -> None:
    condition = {"Bool": {"aws:SecureTransport": policy_value}}
    assert when(condition, {"aws:SecureTransport": request_value}) is expected


def test_binary_equals_compares_bytes() -> None:
    value = base64.b64encode(b"\x00\x01binary").decode()
    assert when({"BinaryEquals": {"k:b": value}}, {"k:b": value})
    assert not when({"BinaryEquals": {"k:b": value}}, {"k:b": base64.b64encode(b"other").decode()})
    assert not when({"BinaryEquals": {"k:b": value}}, {"k:b": "%%%"})


@pytest.mark.parametrize(
    ("operator", "policy_value", "address", "expected"),
    [
        ("IpAddress", "203.0.113.0/24", "203.0.113.77", True),
        ("IpAddress", "203.0.113.0/24", "198.51.100.1", False),
        ("IpAddress", "203.0.113.5", "203.0.113.5", True),
        ("IpAddress", "203.0.113.5", "203.0.113.6", False),
        ("IpAddress", ["10.0.0.0/8", "2001:DB8::/32"], "2001:db8:1::1", True),
        ("IpAddress", "2001:db8::/32", "10.0.0.1", False),
        ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
        ("NotIpAddress", ["192.0.2.0/24", "203.0.113.0/24"], "198.51.100.7", True),
        ("NotIpAddress", ["192.0.2.0/24", "203.0.113.0/24"], "203.0.113.9", False),
    ],
)
def test_ip(operator: str, policy_value: object, address: str, expected: bool) -> None:
    assert when({operator: {"aws:SourceIp": policy_value}}, {"aws:SourceIp": address}) is expected


# --- ARN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "pattern", "value", "expected"),
    [
        (
            "ArnLike",
            "arn:aws:iam::111122223333:role/team-*",
            "arn:aws:iam::111122223333:role/team-a",
            True,
        ),
        (
            "ArnEquals",
            "arn:aws:iam::111122223333:role/team-*",
            "arn:aws:iam::111122223333:role/team-a",
            True,
        ),
        ("ArnLike", "arn:aws:iam::*:role/x", "arn:aws:iam::111122223333:role/x", True),
        ("ArnLike", "arn:aws:iam::*:role/x", "arn:aws:iam::1:2:role/x", False),
        ("ArnNotLike", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::1:role/dev", True),
        ("ArnNotEquals", "arn:aws:iam::*:role/admin-*", "arn:aws:iam::1:role/admin-1", False),
    ],
)
def test_arn(operator: str, pattern: str, value: str, expected: bool) -> None:
    assert when({operator: {"aws:SourceArn": pattern}}, {"aws:SourceArn": value}) is expected


# --- multivalued keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag_keys", "expected"),
    [
        (["team"], True),
        (["team", "cost-center"], True),
        (["team", "owner"], False),
        ([], True),
        (None, True),
        ("team", True),
    ],
)
def test_for_all_values(tag_keys: object, expected: bool) -> None:
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    condition = {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost-center"]}}
    assert when(condition, context) is expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [(["ID", "x"], True), (["x"], False), ([], False), (None, False), ("ID", True)],
)
def test_for_any_value(attributes: object, expected: bool) -> None:
    context = {} if attributes is None else {"dynamodb:Attributes": attributes}
    condition = {"ForAnyValue:StringEquals": {"dynamodb:Attributes": ["ID", "PostDateTime"]}}
    assert when(condition, context) is expected


def test_for_all_values_negated_means_none_match() -> None:
    condition = {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}}
    assert not when(condition, {"aws:TagKeys": ["key1-a", "key2"]})
    assert when(condition, {"aws:TagKeys": ["key2", "key3"]})


def test_for_any_value_negated() -> None:
    condition = {"ForAnyValue:StringNotEquals": {"aws:TagKeys": "team"}}
    assert when(condition, {"aws:TagKeys": ["team", "other"]})
    assert not when(condition, {"aws:TagKeys": ["team"]})
    assert not when(condition, {"aws:TagKeys": []})


def test_set_operator_with_if_exists() -> None:
    condition = {"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "team"}}
    assert when(condition, {})
    assert not when(condition, {"aws:TagKeys": ["x"]})


def test_plain_operator_on_multivalued_key_does_not_match() -> None:
    assert not when({"StringEquals": {"aws:TagKeys": "team"}}, {"aws:TagKeys": ["team"]})
    assert not when({"StringNotEquals": {"aws:TagKeys": "team"}}, {"aws:TagKeys": ["x"]})
