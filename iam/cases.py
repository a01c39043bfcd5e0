"""Policy test cases: decide each one with the engine the server uses.

This backs ``airdock iam simulate --cases FILE``, and the reference vectors
(tests/iam/data/iam-cases.json) are in the same format, which :data:`CASE_FORMAT` describes;
infra/simulate-example.json is a small example.

Of the principal's fields only ``tags`` reach the request context: each tag becomes
``aws:PrincipalTag/<key>``, so an ABAC case needs no copy of them. Every other key a policy
tests (``aws:username``, ``aws:PrincipalArn``, ``aws:ResourceTag/...``) comes from ``context``
alone, exactly as written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from iam.evaluate import Decision, evaluate
from iam.grammar import PolicyKind
from iam.policy import Policy, parse_policy
from iam.request import Caller, Request, normalise_context

CASE_FORMAT = """\
A case file is a JSON array of cases. A case is an object:

  id        a name for the case, echoed in the output
  policies  an object; each member is a policy, or an array of them. A policy is a JSON
            document, or "file://PATH" for a JSON file relative to the case file:
              identity  the caller's identity policies (its user and groups, or its role)
              resource  resource-based policies on the target (Principal/NotPrincipal apply)
              boundary  the caller's permissions boundary (leave out when there is none)
              session   session policies of a role session (leave out when there are none)
  request   an object:
              action     "service:Action", e.g. "airflow:GetEnvironment"
              resource   the target ARN, or "*" for an action without a resource type
              principal  {"arn": user ARN or session ARN (arn:aws:sts::ACCOUNT:assumed-role/R/S),
                          "type": "User" (default) or "AssumedRole", "account": "ACCOUNT",
                          "role_arn": the role's ARN (sessions only),
                          "tags": {"team": "a"}  (each becomes aws:PrincipalTag/<key>)}
              context    every other condition key the policies test, e.g.
                         {"aws:ResourceTag/team": "a", "aws:TagKeys": ["team"],
                          "iam:PassedToService": "airflow.amazonaws.com"};
                         strings, or arrays of strings for multivalued keys
  expected  "Allow", "ExplicitDeny" or "ImplicitDeny" (optional; compared by --check)

Other members (e.g. "note", "source") are ignored. The context may repeat a principal tag
(aws:PrincipalTag/team) but not contradict it.
"""

_PRINCIPAL_TAG = "aws:principaltag/"
FILE_PREFIX = "file://"


class CaseError(ValueError):
    """A test case does not follow the vector format."""


def _policies(
    raw: Mapping[str, Any], field: str, kind: PolicyKind, case_id: str, base: Path
) -> list[Policy] | None:
    docs = raw.get(field)
    if docs is None:
        return None
    if isinstance(docs, Mapping | str):
        docs = [docs]
    if not isinstance(docs, list):
        raise CaseError(f"case {case_id!r}: policies.{field} must be a list of policies")
    out = []
    for i, doc in enumerate(docs):
        if isinstance(doc, str) and doc.startswith(FILE_PREFIX):
            path = base / doc[len(FILE_PREFIX) :]
            try:
                doc = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise CaseError(
                    f"case {case_id!r}: policies.{field}[{i}]: cannot read {path} ({err})"
                ) from None
        out.append(parse_policy(doc, kind=kind, name=f"{case_id}:{field}[{i}]"))
    return out


def request_from_case(raw: Mapping[str, Any], case_id: str = "?") -> Request:
    """Build a :class:`Request` from a case's ``request`` object."""
    try:
        principal = raw["principal"]
        tags = _tags(principal.get("tags"), case_id)
        caller = Caller(
            arn=principal["arn"],
            type=principal.get("type", "User"),
            account=principal.get("account", ""),
            tags=tags,
            role_arn=principal.get("role_arn"),
        )
        context = normalise_context(raw.get("context") or {})
        for tag, value in tags.items():
            given = context.setdefault(_PRINCIPAL_TAG + tag.lower(), value)
            if given != value:
                raise CaseError(
                    f"case {case_id!r}: context aws:PrincipalTag/{tag} is {given!r}, "
                    f"but principal.tags.{tag} is {value!r}"
                )
        return Request.prepared(raw["action"], raw["resource"], caller, context)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CaseError(f"case {case_id!r}: malformed request ({exc})") from None


def _tags(raw: Any, case_id: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise CaseError(f"case {case_id!r}: principal.tags must map tag keys to string values")
    return dict(raw)


def decide_case(case: Mapping[str, Any], *, base: str | Path = ".") -> Decision:
    """The engine's decision for one case (``expected`` is ignored here). ``file://`` policy
    paths are relative to ``base``, normally the folder of the case file."""
    case_id = str(case.get("id", "?"))
    policies = case.get("policies") or {}
    if not isinstance(policies, Mapping):
        raise CaseError(f"case {case_id!r}: policies must be an object")
    request = request_from_case(case.get("request") or {}, case_id)
    folder = Path(base)
    return evaluate(
        request,
        identity=_policies(policies, "identity", "identity", case_id, folder) or (),
        resource=_policies(policies, "resource", "resource", case_id, folder) or (),
        boundary=_policies(policies, "boundary", "identity", case_id, folder),
        session=_policies(policies, "session", "identity", case_id, folder),
    )


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """Read a vector file: a JSON array of cases."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise CaseError(f"{path}: expected a JSON array of cases")
    return data


def simulate(
    cases: Iterable[Mapping[str, Any]], *, base: str | Path = "."
) -> Iterator[dict[str, str]]:
    """``{"id": ..., "decision": ...}`` per case, in order."""
    for case in cases:
        yield {"id": str(case.get("id", "?")), "decision": decide_case(case, base=base).value}
