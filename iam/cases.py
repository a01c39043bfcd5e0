"""Run policy test vectors (the ``iam-cases.json`` format) through the engine.

A case is ``{"id", "policies": {"identity", "resource"?, "boundary"?, "session"?},
"request": {"action", "resource", "principal": {...}, "context": {...}}, "expected"?}``.
This backs ``airdock iam simulate --cases FILE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from iam.evaluate import Decision, evaluate
from iam.grammar import PolicyKind
from iam.policy import Policy, parse_policy
from iam.request import Caller, Request


class CaseError(ValueError):
    """A test case does not follow the vector format."""


def _policies(
    raw: Mapping[str, Any], field: str, kind: PolicyKind, case_id: str
) -> list[Policy] | None:
    docs = raw.get(field)
    if docs is None:
        return None
    if isinstance(docs, Mapping):
        docs = [docs]
    if not isinstance(docs, list):
        raise CaseError(f"case {case_id!r}: policies.{field} must be a list of policies")
    return [
        parse_policy(doc, kind=kind, name=f"{case_id}:{field}[{i}]") for i, doc in enumerate(docs)
    ]


def request_from_case(raw: Mapping[str, Any], case_id: str = "?") -> Request:
    """Build a :class:`Request` from a case's ``request`` object."""
    try:
        principal = raw["principal"]
        caller = Caller(
            arn=principal["arn"],
            type=principal.get("type", "User"),
            account=principal.get("account", ""),
            tags=dict(principal.get("tags") or {}),
            role_arn=principal.get("role_arn"),
        )
        return Request(raw["action"], raw["resource"], caller, raw.get("context") or {})
    except (KeyError, TypeError, AttributeError) as exc:
        raise CaseError(f"case {case_id!r}: malformed request ({exc})") from None


def decide_case(case: Mapping[str, Any]) -> Decision:
    """The engine's decision for one case (``expected`` is ignored here)."""
    case_id = str(case.get("id", "?"))
    policies = case.get("policies") or {}
    if not isinstance(policies, Mapping):
        raise CaseError(f"case {case_id!r}: policies must be an object")
    request = request_from_case(case.get("request") or {}, case_id)
    return evaluate(
        request,
        identity=_policies(policies, "identity", "identity", case_id) or (),
        resource=_policies(policies, "resource", "resource", case_id) or (),
        boundary=_policies(policies, "boundary", "identity", case_id),
        session=_policies(policies, "session", "identity", case_id),
    )


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """Read a vector file: a JSON array of cases."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise CaseError(f"{path}: expected a JSON array of cases")
    return data


def simulate(cases: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, str]]:
    """``{"id": ..., "decision": ...}`` per case, in order (for the CLI)."""
    for case in cases:
        yield {"id": str(case.get("id", "?")), "decision": decide_case(case).value}
