"""NotPrincipal, NotAction and NotResource, in identity and resource policies.

Each vector is a case in the iam-cases.json format, run through the same path as the reference
vectors (:func:`iam.cases.decide_case`). The comment above each one names the documented rule it
checks; "derived" marks a rule that follows from documented ones rather than being stated.
"""

from __future__ import annotations

from typing import Any

import pytest

from iam.cases import decide_case
from iam.errors import PolicyError
from iam.policy import parse_policy

DOCS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_"
NOT_PRINCIPAL = f"{DOCS}elements_notprincipal.html"
NOT_ACTION = f"{DOCS}elements_notaction.html"
NOT_RESOURCE = f"{DOCS}elements_notresource.html"
EVALUATION = f"{DOCS}evaluation-logic.html"

ACCT = "111122223333"
ROOT = f"arn:aws:iam::{ACCT}:root"
BOB = f"arn:aws:iam::{ACCT}:user/bob"
ALICE = f"arn:aws:iam::{ACCT}:user/alice"
ROLE = f"arn:aws:iam::{ACCT}:role/audit-role"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/audit-role/audit-app"
OTHER_SESSION = f"arn:aws:sts::{ACCT}:assumed-role/audit-role/someone-else"
ENV = f"arn:aws:airflow:us-east-1:{ACCT}:environment"
GET, DELETE = "airflow:GetEnvironment", "airflow:DeleteEnvironment"

CALLERS: dict[str, dict[str, str]] = {
    BOB: {"arn": BOB, "type": "User", "account": ACCT},
    ALICE: {"arn": ALICE, "type": "User", "account": ACCT},
    SESSION: {"arn": SESSION, "type": "AssumedRole", "account": ACCT, "role_arn": ROLE},
}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def st(effect: str, **elements: Any) -> dict[str, Any]:
    """A statement; ``Action``/``Resource`` default to everything unless their Not* is given."""
    out: dict[str, Any] = {"Effect": effect, **elements}
    if "NotAction" not in out:
        out.setdefault("Action", "*")
    if "NotResource" not in out:
        out.setdefault("Resource", "*")
    return out


EVERYTHING = doc(st("Allow"))
S3_ONLY = doc(st("Allow", Action="s3:*"))


def case(
    case_id: str,
    source: str,
    expected: str,
    *,
    caller: str = BOB,
    action: str = GET,
    target: str = f"{ENV}/team-a",
    **policies: dict[str, Any],
) -> Any:
    """A vector on ``target``; ``policies``: identity, resource, boundary or session documents."""
    vector = {
        "id": case_id,
        "source": source,
        "policies": {kind: [document] for kind, document in policies.items()},
        "request": {
            "action": action,
            "resource": target,
            "principal": CALLERS[caller],
            "context": {},
        },
        "expected": expected,
    }
    return pytest.param(vector, id=case_id)


def not_principal(effect: str, *listed: str, **elements: Any) -> dict[str, Any]:
    return doc(st(effect, NotPrincipal={"AWS": list(listed)}, **elements))


GET_ONLY_BUT_BOB = not_principal("Deny", BOB, ROOT, NotAction="airflow:Get*")
PUBLIC_ONLY_BUT_BOB = not_principal("Deny", BOB, ROOT, NotResource=f"{ENV}/public")

# fmt: off
VECTORS = [
    # --- NotPrincipal with Deny -------------------------------------------------------------
    # Deny + NotPrincipal denies everyone except the listed principals; a user is spared when
    # both its ARN and its account's ARN are listed.
    case("np-deny-spares-user-and-account", NOT_PRINCIPAL, "Allow",
         identity=EVERYTHING, resource=not_principal("Deny", BOB, ROOT)),
    # Without the account ARN, the account is denied, and the user with it.
    case("np-deny-user-without-account", NOT_PRINCIPAL, "ExplicitDeny",
         identity=EVERYTHING, resource=not_principal("Deny", BOB)),
    # Every principal not listed is denied.
    case("np-deny-other-user", NOT_PRINCIPAL, "ExplicitDeny", caller=ALICE,
         identity=EVERYTHING, resource=not_principal("Deny", BOB, ROOT)),
    # Derived: AWS may check the account, then the user; listing the account alone leaves the
    # user itself denied.
    case("np-deny-account-only", NOT_PRINCIPAL, "ExplicitDeny",
         identity=EVERYTHING, resource=not_principal("Deny", ROOT)),
    # An assumed-role session is spared when its session ARN, its role ARN and the account are
    # all listed.
    case("np-deny-spares-session-role-account", NOT_PRINCIPAL, "Allow", caller=SESSION,
         identity=EVERYTHING, resource=not_principal("Deny", SESSION, ROLE, ROOT)),
    # Naming the role does not spare its sessions: the session ARN must be listed too.
    case("np-deny-role-without-session", NOT_PRINCIPAL, "ExplicitDeny", caller=SESSION,
         identity=EVERYTHING, resource=not_principal("Deny", ROLE, ROOT)),
    # Without the role ARN the role is denied, and its session with it.
    case("np-deny-session-without-role", NOT_PRINCIPAL, "ExplicitDeny", caller=SESSION,
         identity=EVERYTHING, resource=not_principal("Deny", SESSION, ROOT)),
    # A session principal names one specific session; another session of the role is denied.
    case("np-deny-other-session", NOT_PRINCIPAL, "ExplicitDeny", caller=SESSION,
         identity=EVERYTHING, resource=not_principal("Deny", OTHER_SESSION, ROLE, ROOT)),
    # A NotPrincipal Deny always denies a principal that has a permissions boundary, whatever
    # the element lists.
    case("np-deny-always-denies-bounded-principal", NOT_PRINCIPAL, "ExplicitDeny",
         identity=EVERYTHING, boundary=EVERYTHING, resource=not_principal("Deny", BOB, ROOT)),
    # The exemption grants nothing by itself: Bob still needs an Allow.
    case("np-deny-exemption-grants-nothing", NOT_PRINCIPAL, "ImplicitDeny",
         resource=not_principal("Deny", BOB, ROOT)),
    # --- NotPrincipal with Allow ------------------------------------------------------------
    # Allow + NotPrincipal grants to every principal except the listed ones.
    case("np-allow-grants-the-unlisted", NOT_PRINCIPAL, "Allow",
         resource=not_principal("Allow", ALICE)),
    # ... and the listed principal gets nothing from it.
    case("np-allow-withholds-from-listed-user", NOT_PRINCIPAL, "ImplicitDeny",
         resource=not_principal("Allow", BOB)),
    # Derived: a Principal naming an account covers its users, so a NotPrincipal naming the
    # account withholds the grant from them.
    case("np-allow-withholds-from-account-users", NOT_PRINCIPAL, "ImplicitDeny",
         resource=not_principal("Allow", ROOT)),
    # Derived: a Principal naming a role covers its sessions, so a NotPrincipal naming the role
    # withholds the grant from them.
    case("np-allow-withholds-from-role-sessions", NOT_PRINCIPAL, "ImplicitDeny", caller=SESSION,
         resource=not_principal("Allow", ROLE)),
    # The listed session gets nothing.
    case("np-allow-withholds-from-listed-session", NOT_PRINCIPAL, "ImplicitDeny", caller=SESSION,
         resource=not_principal("Allow", SESSION)),
    # A resource-policy grant that does not name the caller's user or session ARN is limited
    # by a permissions boundary...
    case("np-allow-cut-by-boundary", EVALUATION, "ImplicitDeny",
         boundary=S3_ONLY, resource=not_principal("Allow", ALICE)),
    # ... and by a session policy.
    case("np-allow-cut-by-session-policy", EVALUATION, "ImplicitDeny", caller=SESSION,
         session=S3_ONLY, resource=not_principal("Allow", ALICE)),
    # --- NotAction --------------------------------------------------------------------------
    # Allow + NotAction covers every action not listed...
    case("na-allow-covers-the-unlisted", NOT_ACTION, "Allow",
         identity=doc(st("Allow", NotAction=DELETE))),
    # ... but not the listed ones.
    case("na-allow-skips-the-listed", NOT_ACTION, "ImplicitDeny", action=DELETE,
         identity=doc(st("Allow", NotAction=DELETE))),
    # Allow + NotAction is still limited to the statement's Resource.
    case("na-allow-limited-by-resource", NOT_ACTION, "ImplicitDeny", target=f"{ENV}/team-b",
         identity=doc(st("Allow", NotAction="iam:*", Resource=f"{ENV}/team-a"))),
    # Deny + NotAction denies every action except the listed ones.
    case("na-deny-everything-else", NOT_ACTION, "ExplicitDeny", action=DELETE,
         identity=doc(st("Allow"), st("Deny", NotAction="airflow:Get*"))),
    case("na-deny-spares-the-listed", NOT_ACTION, "Allow",
         identity=doc(st("Allow"), st("Deny", NotAction="airflow:Get*"))),
    # NotAction works in a resource-based policy like in an identity policy.
    case("na-resource-policy", NOT_ACTION, "ImplicitDeny", action=DELETE,
         resource=doc(st("Allow", Principal={"AWS": BOB}, NotAction=DELETE))),
    # --- NotResource ------------------------------------------------------------------------
    # Allow + NotResource covers every resource except the listed ones.
    case("nr-allow-covers-the-unlisted", NOT_RESOURCE, "Allow", target=f"{ENV}/dev",
         identity=doc(st("Allow", NotResource=f"{ENV}/prod"))),
    case("nr-allow-skips-the-listed", NOT_RESOURCE, "ImplicitDeny", target=f"{ENV}/prod",
         identity=doc(st("Allow", NotResource=f"{ENV}/prod"))),
    # NotResource "*" leaves no resource at all.
    case("nr-star-covers-nothing", NOT_RESOURCE, "ImplicitDeny",
         identity=doc(st("Allow", NotResource="*"))),
    # Deny + NotResource denies every resource outside the listed ones.
    case("nr-deny-outside", NOT_RESOURCE, "ExplicitDeny", target=f"{ENV}/team-b-x",
         identity=doc(st("Allow"), st("Deny", NotResource=f"{ENV}/team-a*"))),
    # NotResource works in a resource-based policy like in an identity policy.
    case("nr-resource-policy", NOT_RESOURCE, "ImplicitDeny", target=f"{ENV}/prod",
         resource=doc(st("Allow", Principal={"AWS": BOB}, NotResource=f"{ENV}/prod"))),
    # --- combinations ---------------------------------------------------------------------
    # A statement applies only when its principal, action and resource elements all match, so
    # each Not* element narrows it independently.
    # Deny + NotPrincipal + NotAction: unlisted principals are denied the unlisted actions...
    case("np-na-deny-unlisted-action", NOT_PRINCIPAL, "ExplicitDeny", caller=ALICE,
         action=DELETE, identity=EVERYTHING, resource=GET_ONLY_BUT_BOB),
    # ... keep the listed actions...
    case("np-na-deny-spares-listed-action", NOT_PRINCIPAL, "Allow", caller=ALICE,
         identity=EVERYTHING, resource=GET_ONLY_BUT_BOB),
    # ... and the listed principal keeps every action.
    case("np-na-deny-spares-listed-principal", NOT_PRINCIPAL, "Allow", action=DELETE,
         identity=EVERYTHING, resource=GET_ONLY_BUT_BOB),
    # Deny + NotPrincipal + NotResource: unlisted principals are denied outside the listed
    # resources, and keep the listed ones.
    case("np-nr-deny-outside", NOT_PRINCIPAL, "ExplicitDeny", caller=ALICE,
         target=f"{ENV}/private", identity=EVERYTHING, resource=PUBLIC_ONLY_BUT_BOB),
    case("np-nr-deny-spares-listed-resource", NOT_PRINCIPAL, "Allow", caller=ALICE,
         target=f"{ENV}/public", identity=EVERYTHING, resource=PUBLIC_ONLY_BUT_BOB),
    # Allow + NotPrincipal + NotAction: unlisted principals get the unlisted actions only.
    case("np-na-allow-unlisted-action", NOT_PRINCIPAL, "Allow",
         resource=not_principal("Allow", ALICE, NotAction=DELETE)),
    case("np-na-allow-skips-listed-action", NOT_PRINCIPAL, "ImplicitDeny", action=DELETE,
         resource=not_principal("Allow", ALICE, NotAction=DELETE)),
    case("np-na-allow-withholds-from-listed", NOT_PRINCIPAL, "ImplicitDeny", caller=ALICE,
         resource=not_principal("Allow", ALICE, NotAction=DELETE)),
    # Allow + NotPrincipal + NotResource: unlisted principals get the unlisted resources only.
    case("np-nr-allow-unlisted-resource", NOT_PRINCIPAL, "Allow", target=f"{ENV}/dev",
         resource=not_principal("Allow", ALICE, NotResource=f"{ENV}/prod")),
    case("np-nr-allow-skips-listed-resource", NOT_PRINCIPAL, "ImplicitDeny",
         target=f"{ENV}/prod", resource=not_principal("Allow", ALICE, NotResource=f"{ENV}/prod")),
]
# fmt: on


@pytest.mark.parametrize("vector", VECTORS)
def test_vector(vector: dict[str, Any]) -> None:
    assert decide_case(vector).value == vector["expected"]


def test_vector_ids_are_unique() -> None:
    ids = [param.values[0]["id"] for param in VECTORS]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("kind", "statement", "expected"),
    [
        # NotPrincipal cannot be used in an identity-based policy...
        ("identity", st("Deny", NotPrincipal={"AWS": BOB}), "not allowed in an identity"),
        # ... nor in a role trust policy.
        (
            "trust",
            {"Effect": "Deny", "NotPrincipal": {"AWS": BOB}, "Action": "sts:AssumeRole"},
            "not allowed in a role trust policy",
        ),
        # A session named in NotPrincipal must be one specific session: no "all sessions" star.
        (
            "resource",
            st(
                "Deny",
                NotPrincipal={"AWS": [f"arn:aws:sts::{ACCT}:assumed-role/audit-role/*", ROOT]},
            ),
            "'*' on its own is the only wildcard allowed",
        ),
    ],
)
def test_not_principal_grammar(kind: str, statement: dict[str, Any], expected: str) -> None:
    # NotPrincipal's documented restrictions are refused where the document enters.
    with pytest.raises(PolicyError, match=expected):
        parse_policy(doc(statement), kind=kind)  # type: ignore[arg-type]
