"""Policy grammar: check a raw policy document and normalise it, once, where it enters.

The output is a tuple of :class:`iam.statement.Statement` (and the document's Version); turning
those into matchers is :mod:`iam.compiled`'s job, and :mod:`iam.policy` ties the two together.
Every problem is reported as a :class:`PolicyError` naming the element, e.g.
``Statement[2].Condition.StringEquals``.

Three kinds of document are understood:

``identity``  attached to users, groups and roles (also used for boundaries and session
              policies): no Principal, Resource required.
``resource``  attached to a resource: Principal or NotPrincipal required, Resource required.
``trust``     a role's trust policy: Principal required (NotPrincipal is refused, as IAM
              does), Resource optional.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from iam.conditions import Condition, compile_condition
from iam.errors import PolicyError, clip
from iam.matching import has_wildcard
from iam.statement import PrincipalSpec, Statement

PolicyKind = Literal["identity", "resource", "trust"]
KINDS: tuple[str, ...] = ("identity", "resource", "trust")

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"
_VERSIONS = (VERSION_2012, VERSION_2008)

# Generous limits (AWS caps managed policies at 6,144 characters); they exist so that a hostile
# document costs bounded time and memory before it is rejected.
MAX_DOCUMENT_CHARS = 256 * 1024
MAX_ELEMENTS = 20_000

_DOC_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
    }
)
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")
_IDENTITY_SID = re.compile(r"[A-Za-z0-9]*")
_ACTION = re.compile(r"[A-Za-z0-9*?-]+:[A-Za-z0-9*?_.-]+")
_ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)

DOCUMENT = "(document)"


def parse_document(
    doc: Mapping[str, Any] | str | bytes, kind: PolicyKind
) -> tuple[str | None, tuple[Statement, ...]]:
    """(Version, normalised statements) of a policy document given as a mapping or JSON text.

    Raises :class:`PolicyError` naming the offending element for anything malformed; never any
    other exception for bad input.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if isinstance(doc, bytes | bytearray):
        try:
            doc = bytes(doc).decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError(DOCUMENT, "not valid UTF-8") from None
    if isinstance(doc, str):
        doc = _load_json(doc)
    try:
        return _Parser(kind).document(doc)
    except RecursionError:
        raise PolicyError(DOCUMENT, "document is nested too deeply") from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _load_json(text: str) -> Any:
    if len(text) > MAX_DOCUMENT_CHARS:
        raise PolicyError(DOCUMENT, f"document is larger than {MAX_DOCUMENT_CHARS} characters")
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKey as exc:
        # Two values for one key are ambiguous (json keeps the last): refuse instead of guessing.
        raise PolicyError(DOCUMENT, f"duplicate key {exc.key!r}") from None
    except json.JSONDecodeError as exc:
        raise PolicyError(DOCUMENT, f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except (RecursionError, ValueError):
        raise PolicyError(DOCUMENT, "not valid JSON") from None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class _Parser:
    """Walks one document; keeps the element budget and the policy kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.budget = MAX_ELEMENTS

    def spend(self, count: int = 1) -> None:
        self.budget -= count
        if self.budget < 0:
            raise PolicyError(DOCUMENT, f"document has more than {MAX_ELEMENTS} elements")

    def document(self, doc: Any) -> tuple[str | None, tuple[Statement, ...]]:
        if not isinstance(doc, Mapping):
            raise PolicyError(DOCUMENT, f"a policy must be a JSON object, not {_type_name(doc)}")
        self.check_keys(doc, _DOC_KEYS, DOCUMENT)
        version = doc.get("Version")
        if version is not None and version not in _VERSIONS:
            raise PolicyError(
                "Version", f"must be {VERSION_2012!r} or {VERSION_2008!r}, not {version!r}"
            )
        if "Id" in doc and not isinstance(doc["Id"], str):
            raise PolicyError("Id", f"must be a string, not {_type_name(doc['Id'])}")
        if "Statement" not in doc:
            raise PolicyError("Statement", "missing")
        raw = doc["Statement"]
        if isinstance(raw, Mapping):
            items = [("Statement", raw)]
        elif isinstance(raw, list):
            self.spend(len(raw))
            items = [(f"Statement[{i}]", s) for i, s in enumerate(raw)]
        else:
            raise PolicyError("Statement", f"must be an object or an array, not {_type_name(raw)}")
        variables = version == VERSION_2012
        statements = tuple(self.statement(s, where, variables) for where, s in items)
        seen: dict[str, str] = {}
        for st in statements:
            if st.sid:
                if st.sid in seen:
                    raise PolicyError(f"{st.where}.Sid", f"duplicate Sid {st.sid!r}")
                seen[st.sid] = st.where
        return version, statements

    def check_keys(self, obj: Mapping[Any, Any], allowed: frozenset[str], where: str) -> None:
        for key in obj:
            if not isinstance(key, str):
                raise PolicyError(where, f"keys must be strings, not {_type_name(key)}")
            if key not in allowed:
                raise PolicyError(where, f"unknown element {key!r}")

    def statement(self, raw: Any, where: str, variables: bool) -> Statement:
        if not isinstance(raw, Mapping):
            raise PolicyError(where, f"a statement must be an object, not {_type_name(raw)}")
        self.check_keys(raw, _STATEMENT_KEYS, where)
        sid = raw.get("Sid")
        if sid is not None:
            if not isinstance(sid, str):
                raise PolicyError(f"{where}.Sid", f"must be a string, not {_type_name(sid)}")
            if self.kind == "identity" and not _IDENTITY_SID.fullmatch(sid):
                raise PolicyError(f"{where}.Sid", "may contain only letters and digits")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            problem = "missing" if effect is None else f"must be 'Allow' or 'Deny', not {effect!r}"
            raise PolicyError(f"{where}.Effect", problem)

        actions, not_action = self.pair(raw, "Action", "NotAction", where, required=True)
        for i, action in enumerate(actions):
            if action != "*" and not _ACTION.fullmatch(action):
                element = "NotAction" if not_action else "Action"
                raise PolicyError(
                    f"{where}.{element}[{i}]", f"{clip(action)!r} is not 'service:Action' or '*'"
                )

        resources, not_resource = self.pair(
            raw, "Resource", "NotResource", where, required=self.kind != "trust"
        )
        element = "NotResource" if not_resource else "Resource"
        for i, resource in enumerate(resources or ()):
            self.check_resource(resource, f"{where}.{element}[{i}]")

        principal, not_principal = self.principal(raw, where)
        conditions, checks = self.conditions(raw.get("Condition"), f"{where}.Condition", variables)
        return Statement(
            where=where,
            sid=sid or None,
            effect=effect,
            actions=actions or (),
            not_action=not_action,
            resources=resources,
            not_resource=not_resource,
            principal=principal,
            not_principal=not_principal,
            conditions=conditions,
            checks=checks,
        )

    def pair(
        self, raw: Mapping[str, Any], name: str, negated: str, where: str, *, required: bool
    ) -> tuple[tuple[str, ...] | None, bool]:
        has, has_not = name in raw, negated in raw
        if has and has_not:
            raise PolicyError(where, f"use either {name} or {negated}, not both")
        if not has and not has_not:
            if required:
                raise PolicyError(where, f"missing {name} or {negated}")
            return None, False
        element = name if has else negated
        return self.strings(raw[element], f"{where}.{element}"), has_not

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if isinstance(value, str):
            self.spend()
            return (value,)
        if isinstance(value, list | tuple):
            if not value:
                raise PolicyError(where, "must not be an empty array")
            self.spend(len(value))
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise PolicyError(f"{where}[{i}]", f"must be a string, not {_type_name(item)}")
            return tuple(value)
        raise PolicyError(
            where, f"must be a string or an array of strings, not {_type_name(value)}"
        )

    def check_resource(self, resource: str, where: str) -> None:
        if resource == "*":
            return
        if not resource.startswith("arn:"):
            raise PolicyError(where, f"{clip(resource)!r} is not an ARN or '*'")
        parts = resource.split(":", 5)
        if len(parts) >= 3 and has_wildcard(parts[2]):
            raise PolicyError(where, "wildcards are not allowed in the service part of an ARN")

    def principal(self, raw: Mapping[str, Any], where: str) -> tuple[PrincipalSpec | None, bool]:
        has, has_not = "Principal" in raw, "NotPrincipal" in raw
        if self.kind == "identity":
            if has or has_not:
                element = "Principal" if has else "NotPrincipal"
                raise PolicyError(f"{where}.{element}", "not allowed in an identity-based policy")
            return None, False
        if has and has_not:
            raise PolicyError(where, "use either Principal or NotPrincipal, not both")
        if self.kind == "trust":
            # IAM refuses NotPrincipal in a role trust policy: who may assume must be named.
            if has_not:
                raise PolicyError(f"{where}.NotPrincipal", "not allowed in a role trust policy")
            if not has:
                raise PolicyError(where, "missing Principal (trust policy)")
        if not has and not has_not:
            raise PolicyError(where, f"missing Principal or NotPrincipal ({self.kind} policy)")
        element = "Principal" if has else "NotPrincipal"
        return self.principal_spec(raw[element], f"{where}.{element}"), has_not

    def principal_spec(self, value: Any, where: str) -> PrincipalSpec:
        if value == "*":
            return PrincipalSpec(wildcard=True, values={})
        if not isinstance(value, Mapping) or not value:
            raise PolicyError(where, "must be '*' or an object such as {\"AWS\": ...}")
        values: dict[str, tuple[str, ...]] = {}
        wildcard = False
        for kind, raw_ids in value.items():
            if kind not in _PRINCIPAL_TYPES:
                raise PolicyError(where, f"unknown principal type {kind!r}")
            ids = []
            for i, ident in enumerate(self.strings(raw_ids, f"{where}.{kind}")):
                item_where = f"{where}.{kind}[{i}]"
                if ident == "*" and kind == "AWS":
                    wildcard = True
                    continue
                if has_wildcard(ident):
                    raise PolicyError(item_where, "'*' on its own is the only wildcard allowed")
                if kind == "AWS":
                    if _ACCOUNT_ID.fullmatch(ident):
                        ident = f"arn:aws:iam::{ident}:root"
                    elif not ident.startswith("arn:"):
                        raise PolicyError(item_where, f"{clip(ident)!r} is not an account or ARN")
                if not ident:
                    raise PolicyError(item_where, "must not be empty")
                ids.append(ident)
            if ids:
                values[kind] = tuple(ids)
        return PrincipalSpec(wildcard=wildcard, values=values)

    def conditions(
        self, raw: Any, where: str, variables: bool
    ) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], tuple[Condition, ...]]:
        if raw is None:
            return (), ()
        if not isinstance(raw, Mapping):
            raise PolicyError(where, f"must be an object, not {_type_name(raw)}")
        out = []
        checks = []
        for operator, block in raw.items():
            if not isinstance(operator, str):
                raise PolicyError(where, f"keys must be strings, not {_type_name(operator)}")
            op_where = f"{where}.{operator}"
            if not isinstance(block, Mapping) or not block:
                raise PolicyError(op_where, "must be a non-empty object of condition keys")
            for key, value in block.items():
                if not isinstance(key, str) or not key:
                    raise PolicyError(op_where, "condition keys must be non-empty strings")
                values = self.condition_values(value, f"{op_where}.{key}")
                # Compiling here validates operator and values with a precise location.
                checks.append(
                    compile_condition(operator, key, values, variables=variables, where=op_where)
                )
                out.append((operator, key, values))
        return tuple(out), tuple(checks)

    def condition_values(self, value: Any, where: str) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else [value]
        if not items:
            raise PolicyError(where, "must not be an empty array")
        self.spend(len(items))
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool):
                out.append("true" if item else "false")
            elif isinstance(item, str):
                out.append(item)
            elif isinstance(item, int | float):
                if item != item or item in (float("inf"), float("-inf")):
                    raise PolicyError(where, "numbers must be finite")
                out.append(str(item))
            else:
                at = f"{where}[{i}]" if isinstance(value, list | tuple) else where
                raise PolicyError(
                    at, f"must be a string, number or boolean, not {_type_name(item)}"
                )
        return tuple(out)
