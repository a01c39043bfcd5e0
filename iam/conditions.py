"""Condition operators, compiled once per policy into small predicate objects.

Block logic (IAM): all operators AND, all keys under one operator AND, the values of one key OR;
for a negated operator (``StringNotEquals``, ``NotIpAddress``...) the values combine as NOR, i.e.
the negated operator is the complement of its positive twin.

Absent keys: a positive operator is false, a negated one true, any ``...IfExists`` true.
``ForAllValues:`` is true for an absent key or an empty set; ``ForAnyValue:`` is false for both.
A plain operator applied to a multivalued key is treated as no match.

The request context handed to :meth:`KeyCondition.matches` must have lower-cased keys
(see :class:`iam.request.Request`), because condition key names are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

from iam.comparisons import Context, ValueTest, value_test
from iam.errors import PolicyError, clip

_SET_PREFIXES = ("ForAllValues:", "ForAnyValue:")
_IF_EXISTS = "IfExists"

# Operator name -> (family, negated, comparison). Negated operators are stored as the positive
# comparison plus the flag, so NOR semantics fall out of "not any(...)".
_OPERATORS: dict[str, tuple[str, bool, str]] = {
    "StringEquals": ("string", False, "eq"),
    "StringNotEquals": ("string", True, "eq"),
    "StringEqualsIgnoreCase": ("string", False, "ieq"),
    "StringNotEqualsIgnoreCase": ("string", True, "ieq"),
    "StringLike": ("string", False, "like"),
    "StringNotLike": ("string", True, "like"),
    "NumericEquals": ("numeric", False, "eq"),
    "NumericNotEquals": ("numeric", True, "eq"),
    "NumericLessThan": ("numeric", False, "lt"),
    "NumericLessThanEquals": ("numeric", False, "le"),
    "NumericGreaterThan": ("numeric", False, "gt"),
    "NumericGreaterThanEquals": ("numeric", False, "ge"),
    "DateEquals": ("date", False, "eq"),
    "DateNotEquals": ("date", True, "eq"),
    "DateLessThan": ("date", False, "lt"),
    "DateLessThanEquals": ("date", False, "le"),
    "DateGreaterThan": ("date", False, "gt"),
    "DateGreaterThanEquals": ("date", False, "ge"),
    "Bool": ("bool", False, "eq"),
    "BinaryEquals": ("binary", False, "eq"),
    "IpAddress": ("ip", False, "in"),
    "NotIpAddress": ("ip", True, "in"),
    "ArnEquals": ("arn", False, "like"),
    "ArnLike": ("arn", False, "like"),
    "ArnNotEquals": ("arn", True, "like"),
    "ArnNotLike": ("arn", True, "like"),
    "Null": ("null", False, "null"),
}

OPERATOR_NAMES = frozenset(_OPERATORS)


class _Missing:
    pass


_MISSING = _Missing()


@dataclass(slots=True, eq=False)
class KeyCondition:
    """One (operator, key) pair of a Condition block with its policy values."""

    operator: str
    key: str
    test: ValueTest
    _: KW_ONLY
    negated: bool
    if_exists: bool
    qualifier: str | None

    def matches(self, context: Context) -> bool:
        value = context.get(self.key, _MISSING)
        test = self.test
        if self.qualifier is None:
            if value is _MISSING:
                return self.if_exists or self.negated
            if not isinstance(value, str):
                return False
            hit = test(value, context)
            return not hit if self.negated else hit
        if self.qualifier == "ForAllValues":
            if value is _MISSING:
                return True
            values = (value,) if isinstance(value, str) else value
            if self.negated:
                return not any(test(v, context) for v in values)
            return all(test(v, context) for v in values)
        # ForAnyValue
        if value is _MISSING:
            return self.if_exists
        values = (value,) if isinstance(value, str) else value
        if self.negated:
            return any(not test(v, context) for v in values)
        return any(test(v, context) for v in values)

    def __repr__(self) -> str:
        return f"KeyCondition({self.operator!r}, {self.key!r})"


class NullCondition:
    """``Null``: ``"true"`` means the key is absent (an empty value counts as absent)."""

    __slots__ = ("key", "operator", "wants")

    def __init__(self, key: str, wants: frozenset[bool]) -> None:
        self.operator = "Null"
        self.key = key
        self.wants = wants  # True = "key must be absent", False = "key must be present"

    def matches(self, context: Context) -> bool:
        value = context.get(self.key)
        absent = value is None or len(value) == 0
        return absent in self.wants


Condition = KeyCondition | NullCondition


def parse_operator(name: str, where: str) -> tuple[str, str | None, bool]:
    """Split ``ForAnyValue:StringLikeIfExists`` into (base operator, qualifier, if_exists)."""
    qualifier = None
    base = name
    for prefix in _SET_PREFIXES:
        if base.startswith(prefix):
            qualifier = prefix[:-1]
            base = base[len(prefix) :]
            break
    if_exists = False
    if base.endswith(_IF_EXISTS) and base[: -len(_IF_EXISTS)] in _OPERATORS:
        if_exists = True
        base = base[: -len(_IF_EXISTS)]
    if base not in _OPERATORS:
        raise PolicyError(where, f"unknown condition operator {name!r}")
    if base == "Null" and (if_exists or qualifier):
        raise PolicyError(where, "Null cannot be combined with IfExists or a set qualifier")
    return base, qualifier, if_exists


def compile_condition(
    operator: str, key: str, values: Sequence[str], *, variables: bool, where: str
) -> Condition:
    """Compile one operator/key entry; ``values`` are already strings (see :mod:`iam.grammar`)."""
    base, qualifier, if_exists = parse_operator(operator, where)
    family, negated, comparison = _OPERATORS[base]
    lowered_key = key.lower()
    key_where = f"{where}.{key}"
    if family == "null":
        return NullCondition(lowered_key, _null_values(values, key_where))
    test = value_test(family, comparison, values, variables=variables, where=key_where)
    return KeyCondition(
        operator,
        lowered_key,
        test,
        negated=negated,
        if_exists=if_exists,
        qualifier=qualifier,
    )


def _null_values(values: Sequence[str], where: str) -> frozenset[bool]:
    wants = set()
    for v in values:
        low = v.lower()
        if low not in ("true", "false"):
            raise PolicyError(where, f"Null value must be 'true' or 'false', not {clip(v)!r}")
        wants.add(low == "true")
    return frozenset(wants)
