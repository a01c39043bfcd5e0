"""The normalised statement: what a policy document becomes once it has been parsed.

Both the grammar (which builds these) and the compiled matchers (which run them) depend on this
module and on nothing of each other. Values are tuples of strings, condition values are strings,
and ``effect`` is known to be ``Allow`` or ``Deny``, so nothing downstream re-inspects raw JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from iam.conditions import Condition


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    """A normalised Principal/NotPrincipal element.

    ``wildcard`` is true for ``"*"`` or ``{"AWS": "*"}``. ``values`` maps the principal type to
    its identifiers; 12-digit account ids are rewritten to ``arn:aws:iam::ACCT:root``.
    """

    wildcard: bool
    values: Mapping[str, tuple[str, ...]]

    def identifiers(self) -> frozenset[str]:
        return frozenset(v for values in self.values.values() for v in values)

    def to_json(self) -> Any:
        if self.wildcard and not self.values:
            return "*"
        out: dict[str, list[str]] = {k: list(v) for k, v in self.values.items()}
        if self.wildcard:
            out["AWS"] = ["*", *out.get("AWS", [])]
        return out


@dataclass(frozen=True, slots=True)
class Statement:
    """One normalised statement. ``resources`` is ``None`` only for trust policies without a
    Resource element, meaning "any resource"."""

    where: str
    sid: str | None
    effect: str
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None
    not_resource: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]
    checks: tuple[Condition, ...] = field(default=(), compare=False, repr=False)

    @property
    def allow(self) -> bool:
        return self.effect == "Allow"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sid:
            out["Sid"] = self.sid
        out["Effect"] = self.effect
        if self.principal is not None:
            out["NotPrincipal" if self.not_principal else "Principal"] = self.principal.to_json()
        out["NotAction" if self.not_action else "Action"] = list(self.actions)
        if self.resources is not None:
            out["NotResource" if self.not_resource else "Resource"] = list(self.resources)
        if self.conditions:
            block: dict[str, dict[str, list[str]]] = {}
            for operator, key, values in self.conditions:
                block.setdefault(operator, {})[key] = list(values)
            out["Condition"] = block
        return out
