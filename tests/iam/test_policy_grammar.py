"""Policy grammar: normalisation and precise errors for malformed documents."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest

from iam.errors import PolicyError
from iam.grammar import MAX_DOCUMENT_CHARS
from iam.policy import parse_policy

V = "2012-10-17"


def ok(**extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "airflow:GetEnvironment", "Resource": "*", **extra}


def doc(*statements: Any, **top: Any) -> dict[str, Any]:
    return {"Version": V, "Statement": list(statements), **top}


def error(document: Any, kind: str = "identity") -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(document, kind=kind)  # type: ignore[arg-type]
    return str(info.value)


# --- normalisation ---------------------------------------------------------------------------


def test_single_statement_object_and_string_values_normalised() -> None:
    p = parse_policy({"Version": V, "Statement": ok(Sid="One")})
    (st,) = p.statements
    assert st.sid == "One"
    assert st.actions == ("airflow:GetEnvironment",)
    assert st.resources == ("*",)
    assert st.where == "Statement"


def test_condition_numbers_and_booleans_become_strings() -> None:
    p = parse_policy(
        doc(
            ok(
                Condition={
                    "Bool": {"aws:MultiFactorAuthPresent": True},
                    "NumericLessThan": {"aws:MultiFactorAuthAge": [900, 1.5]},
                }
            )
        )
    )
    conditions = p.statements[0].conditions
    assert ("Bool", "aws:MultiFactorAuthPresent", ("true",)) in conditions
    assert ("NumericLessThan", "aws:MultiFactorAuthAge", ("900", "1.5")) in conditions


def test_json_text_is_accepted_and_round_trips() -> None:
    text = json.dumps(doc(ok(), ok(Action=["s3:Get*", "s3:List*"], Resource=["arn:aws:s3:::b"])))
    p = parse_policy(text)
    assert len(p.statements) == 2
    again = parse_policy(p.to_dict())
    assert again.to_dict() == p.to_dict()


@pytest.mark.parametrize("version", ["2012-10-17", "2008-10-17", None])
def test_versions(version: str | None) -> None:
    document: dict[str, Any] = {"Statement": [ok()]}
    if version:
        document["Version"] = version
    p = parse_policy(document)
    assert p.version == version
    assert p.variables_enabled is (version == "2012-10-17")


def test_resource_policy_principals_normalised() -> None:
    p = parse_policy(
        doc(ok(Principal={"AWS": ["111122223333", "arn:aws:iam::111122223333:user/a"]})),
        kind="resource",
    )
    spec = p.statements[0].principal
    assert spec is not None and not spec.wildcard
    assert spec.values["AWS"] == (
        "arn:aws:iam::111122223333:root",
        "arn:aws:iam::111122223333:user/a",
    )
    star = parse_policy(doc(ok(Principal="*")), kind="resource").statements[0].principal
    assert star is not None and star.wildcard


def test_trust_policy_needs_no_resource() -> None:
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
        "Action": "sts:AssumeRole",
    }
    p = parse_policy(doc(trust), kind="trust")
    assert p.statements[0].resources is None


# --- errors, each with its location -----------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "(document): a policy must be a JSON object"),
        ({"Version": V}, "Statement: missing"),
        ({"Version": "2012-10-18", "Statement": [ok()]}, "Version: must be"),
        ({"Version": V, "Statement": "x"}, "Statement: must be an object or an array"),
        ({"Version": V, "Statement": [ok()], "Extra": 1}, "(document): unknown element 'Extra'"),
        ({"Version": V, "Statement": [ok()], "Id": 5}, "Id: must be a string"),
        (doc(ok(), 7), "Statement[1]: a statement must be an object"),
        (doc(ok(Foo=1)), "Statement[0]: unknown element 'Foo'"),
        (doc({"Action": "a:b", "Resource": "*"}), "Statement[0].Effect: missing"),
        (doc(ok(Effect="allow")), "Statement[0].Effect: must be 'Allow' or 'Deny'"),
        (doc({"Effect": "Allow", "Resource": "*"}), "Statement[0]: missing Action or NotAction"),
        (doc(ok(NotAction="a:b")), "Statement[0]: use either Action or NotAction, not both"),
        (doc(ok(Action=[])), "Statement[0].Action: must not be an empty array"),
        (doc(ok(Action=["a:b", 3])), "Statement[0].Action[1]: must be a string"),
        (doc(ok(Action={"a": "b"})), "Statement[0].Action: must be a string or an array"),
        (doc(ok(Action="GetEnvironment")), "Statement[0].Action[0]: 'GetEnvironment' is not"),
        (
            doc({"Effect": "Allow", "Action": "a:b"}),
            "Statement[0]: missing Resource or NotResource",
        ),
        (doc(ok(NotResource="*")), "Statement[0]: use either Resource or NotResource"),
        (doc(ok(Resource="bucket/*")), "Statement[0].Resource[0]: 'bucket/*' is not an ARN"),
        (
            doc(ok(Resource="arn:aws:s3*:::b")),
            "Statement[0].Resource[0]: wildcards are not allowed in the service part",
        ),
        (doc(ok(Sid="has space")), "Statement[0].Sid: may contain only letters and digits"),
        (doc(ok(Sid=1)), "Statement[0].Sid: must be a string"),
        (doc(ok(Sid="A"), ok(Sid="A")), "Statement[1].Sid: duplicate Sid 'A'"),
        (doc(ok(Principal="*")), "Statement[0].Principal: not allowed in an identity-based"),
        (doc(ok(NotPrincipal="*")), "Statement[0].NotPrincipal: not allowed in an identity"),
        (doc(ok(Condition=[])), "Statement[0].Condition: must be an object"),
        (
            doc(ok(), ok(), ok(Condition={"StringEquals": {"k": "v"}, "StringEqualz": {"k": "v"}})),
            "Statement[2].Condition.StringEqualz: unknown condition operator 'StringEqualz'",
        ),
        (doc(ok(Condition={"StringEquals": "v"})), "Statement[0].Condition.StringEquals: must be"),
        (doc(ok(Condition={"StringEquals": {}})), "Statement[0].Condition.StringEquals: must be"),
        (
            doc(ok(Condition={"StringEquals": {"k": None}})),
            "Statement[0].Condition.StringEquals.k: must be a string, number or boolean",
        ),
        (
            doc(ok(Condition={"StringEquals": {"k": ["a", {"x": 1}]}})),
            "Statement[0].Condition.StringEquals.k[1]: must be a string, number or boolean",
        ),
        (
            doc(ok(Condition={"StringEquals": {"k": []}})),
            "Statement[0].Condition.StringEquals.k: must not be an empty array",
        ),
        (
            doc(ok(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "soon"}})),
            "Statement[0].Condition.NumericLessThan.aws:MultiFactorAuthAge: not a number: 'soon'",
        ),
        (
            doc(ok(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})),
            "Statement[0].Condition.DateLessThan.aws:CurrentTime: not an ISO-8601 date",
        ),
        (
            doc(ok(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}})),
            "Statement[0].Condition.IpAddress.aws:SourceIp: not an IP address or CIDR block",
        ),
        (
            doc(ok(Condition={"Bool": {"aws:SecureTransport": "yes"}})),
            "Statement[0].Condition.Bool.aws:SecureTransport: Bool value must be",
        ),
        (
            doc(ok(Condition={"BinaryEquals": {"k": "not base64!"}})),
            "Statement[0].Condition.BinaryEquals.k: BinaryEquals value is not base64",
        ),
        (
            doc(ok(Condition={"Null": {"k": "maybe"}})),
            "Statement[0].Condition.Null.k: Null value must be",
        ),
        (
            doc(ok(Condition={"NullIfExists": {"k": "true"}})),
            "Statement[0].Condition.NullIfExists: Null cannot be combined",
        ),
        (
            doc(ok(Condition={"ForAnyValue:Null": {"k": "true"}})),
            "Statement[0].Condition.ForAnyValue:Null: Null cannot be combined",
        ),
        (
            doc(ok(Condition={"ForSomeValues:StringEquals": {"k": "v"}})),
            "Statement[0].Condition.ForSomeValues:StringEquals: unknown condition operator",
        ),
    ],
)
def test_identity_policy_errors_name_the_location(document: Any, expected: str) -> None:
    assert error(document).startswith(expected)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (ok(), "Statement[0]: missing Principal or NotPrincipal (resource policy)"),
        (ok(Principal="*", NotPrincipal="*"), "Statement[0]: use either Principal or NotPrincipal"),
        (ok(Principal="someone"), "Statement[0].Principal: must be '*' or an object"),
        (ok(Principal={}), "Statement[0].Principal: must be '*' or an object"),
        (ok(Principal={"Robot": "x"}), "Statement[0].Principal: unknown principal type 'Robot'"),
        (
            ok(Principal={"AWS": "arn:aws:iam::111122223333:user/*"}),
            "Statement[0].Principal.AWS[0]: '*' on its own is the only wildcard allowed",
        ),
        (ok(Principal={"AWS": "alice"}), "Statement[0].Principal.AWS[0]: 'alice' is not"),
        (ok(Principal={"AWS": [1]}), "Statement[0].Principal.AWS[0]: must be a string"),
    ],
)
def test_resource_policy_errors(statement: dict[str, Any], expected: str) -> None:
    assert error(doc(statement), kind="resource").startswith(expected)


def test_resource_required_in_resource_policies_but_not_trust() -> None:
    st = {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}
    assert error(doc(st), kind="resource").startswith("Statement[0]: missing Resource")
    parse_policy(doc(st), kind="trust")


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_policy(doc(ok()), kind="session")  # type: ignore[arg-type]


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "(document): not valid JSON"),
        ("", "(document): not valid JSON"),
        ("null", "(document): a policy must be a JSON object, not null"),
        ('"Statement"', "(document): a policy must be a JSON object, not string"),
        (
            '{"Version": "2012-10-17", "Statement": [], "Statement": []}',
            "(document): duplicate key 'Statement'",
        ),
        ("[" * 100_000 + "]" * 100_000, "(document): "),
        ('{"Statement": ' + "[" * 50_000 + "]" * 50_000 + "}", "(document): "),
        ("x" * (MAX_DOCUMENT_CHARS + 1), "(document): document is larger than"),
        ('{"Version": NaN}', "Version: must be"),
    ],
)
def test_garbage_text_raises_policy_error(text: str, expected: str) -> None:
    assert error(text).startswith(expected)


def test_bytes_input() -> None:
    assert parse_policy(json.dumps(doc(ok())).encode()).statements
    assert error(b"\xff\xfe").startswith("(document): not valid UTF-8")


def test_deeply_nested_mapping_raises_policy_error() -> None:
    nested: Any = "x"
    for _ in range(5000):
        nested = {"StringEquals": nested}
    assert error(doc(ok(Condition=nested))).startswith("Statement[0].Condition")


def test_too_many_elements() -> None:
    statements = [ok(Action=[f"svc:A{i}" for i in range(100)]) for _ in range(300)]
    assert "more than" in error(doc(*statements))


def test_non_string_keys_from_yaml_are_rejected() -> None:
    assert error({"Version": V, "Statement": [{True: "x"}]}).startswith(
        "Statement[0]: keys must be strings"
    )
    assert error(doc(ok(Condition={1: {"k": "v"}}))).startswith(
        "Statement[0].Condition: keys must be strings"
    )


def test_random_garbage_never_crashes() -> None:
    rng = random.Random(1234)
    atoms: list[Any] = [None, True, 0, 1.5, "", "*", "Allow", "arn:aws:s3:::b", "a:b", [], {}]
    keys = [
        "Version",
        "Statement",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "Condition",
        "Sid",
        "StringEquals",
        "AWS",
        "k",
    ]

    def junk(depth: int) -> Any:
        roll = rng.random()
        if depth > 4 or roll < 0.4:
            return rng.choice(atoms)
        if roll < 0.7:
            return [junk(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): junk(depth + 1) for _ in range(rng.randint(0, 4))}

    for kind in ("identity", "resource", "trust"):
        for _ in range(3000):
            candidate = junk(0)
            with contextlib.suppress(PolicyError):
                parse_policy(candidate, kind=kind)  # type: ignore[arg-type]
            with contextlib.suppress(PolicyError):
                parse_policy(json.dumps(candidate), kind=kind)  # type: ignore[arg-type]


def test_principal_round_trip_keeps_wildcard() -> None:
    principal = {"AWS": ["*", "arn:aws:iam::111122223333:user/a"], "Service": "x.amazonaws.com"}
    p = parse_policy(doc(ok(Principal=principal)), kind="resource")
    again = parse_policy(p.to_dict(), kind="resource")
    assert again.statements[0].principal == p.statements[0].principal
    assert p.to_dict()["Statement"][0]["Principal"]["AWS"][0] == "*"
