"""A parsed, validated and compiled policy, and :func:`parse_policy`, the way in.

:mod:`iam.grammar` checks and normalises the document, :mod:`iam.compiled` turns each statement
into matchers; a :class:`Policy` holds both and indexes its statements by action, which is what
makes evaluation cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iam.compiled import CompiledStatement, compile_statement
from iam.grammar import VERSION_2012, PolicyKind, parse_document
from iam.statement import Statement

Rules = tuple[tuple[CompiledStatement, ...], tuple[CompiledStatement, ...]]


class Policy:
    """A parsed, validated and compiled policy. Immutable; safe to share between threads.

    Statements are compiled once; the statements relevant to an action are looked up once per
    distinct action and remembered, which is what makes evaluation cheap.
    """

    __slots__ = ("_index", "compiled", "kind", "name", "statements", "version")

    _INDEX_LIMIT = 4096

    def __init__(
        self,
        statements: tuple[Statement, ...],
        *,
        version: str | None,
        kind: str,
        name: str | None = None,
    ) -> None:
        self.statements = statements
        self.version = version
        self.kind = kind
        self.name = name
        variables = version == VERSION_2012
        self.compiled = tuple(compile_statement(s, variables=variables) for s in statements)
        self._index: dict[str, Rules] = {}

    @property
    def variables_enabled(self) -> bool:
        return self.version == VERSION_2012

    def rules_for(self, action_key: str) -> Rules:
        """(Deny statements, Allow statements) whose Action/NotAction covers ``action_key``
        (the lower-cased action)."""
        hit = self._index.get(action_key)
        if hit is None:
            relevant = [s for s in self.compiled if s.covers_action(action_key)]
            hit = (
                tuple(s for s in relevant if not s.allow),
                tuple(s for s in relevant if s.allow),
            )
            if len(self._index) >= self._INDEX_LIMIT:
                self._index.clear()
            self._index[action_key] = hit
        return hit

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.version:
            doc["Version"] = self.version
        doc["Statement"] = [s.to_dict() for s in self.statements]
        return doc

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<Policy{label} {self.kind} statements={len(self.statements)}>"


def parse_policy(
    doc: Mapping[str, Any] | str | bytes,
    *,
    kind: PolicyKind = "identity",
    name: str | None = None,
) -> Policy:
    """Parse a policy document (a mapping or JSON text) into a compiled :class:`Policy`.

    Raises :class:`iam.errors.PolicyError` naming the offending element for anything malformed;
    never any other exception for bad input.
    """
    version, statements = parse_document(doc, kind)
    return Policy(statements, version=version, kind=kind, name=name)
