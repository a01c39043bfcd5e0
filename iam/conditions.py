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

import base64
import binascii
import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from iam.errors import PolicyError
from iam.matching import compile_arn_like, compile_arn_tokens, compile_glob, compile_tokens
from iam.variables import ContextValue, Template, parse_template

Context = Mapping[str, ContextValue]
ValueTest = Callable[[str, Context], bool]

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

_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
}


class _Missing:
    pass


_MISSING = _Missing()


class KeyCondition:
    """One (operator, key) pair of a Condition block with its policy values."""

    __slots__ = ("if_exists", "key", "negated", "operator", "qualifier", "test")

    def __init__(
        self,
        operator: str,
        key: str,
        test: ValueTest,
        *,
        negated: bool,
        if_exists: bool,
        qualifier: str | None,
    ) -> None:
        self.operator = operator
        self.key = key
        self.test = test
        self.negated = negated
        self.if_exists = if_exists
        self.qualifier = qualifier

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
    """Compile one operator/key entry; ``values`` are already strings (see policy parsing)."""
    base, qualifier, if_exists = parse_operator(operator, where)
    family, negated, comparison = _OPERATORS[base]
    lowered_key = key.lower()
    key_where = f"{where}.{key}"
    if family == "null":
        return NullCondition(lowered_key, _null_values(values, key_where))
    builder = _BUILDERS[family]
    test = builder(comparison, values, variables, key_where)
    return KeyCondition(
        operator,
        lowered_key,
        test,
        negated=negated,
        if_exists=if_exists,
        qualifier=qualifier,
    )


# --- value tests per family ----------------------------------------------------------------


def _string_test(comparison: str, values: Sequence[str], variables: bool, where: str) -> ValueTest:
    parsed = [parse_template(v, enabled=variables) for v in values]
    literals = [p for p in parsed if isinstance(p, str)]
    templates = [p for p in parsed if isinstance(p, Template)]
    if comparison == "eq":
        exact = frozenset(literals)
        if not templates:
            return lambda value, _ctx: value in exact
        return lambda value, ctx: (
            value in exact or any(t.resolve_text(ctx) == value for t in templates)
        )
    if comparison == "ieq":
        folded = frozenset(v.lower() for v in literals)

        def ieq(value: str, ctx: Context) -> bool:
            low = value.lower()
            if low in folded:
                return True
            for t in templates:
                text = t.resolve_text(ctx)
                if text is not None and text.lower() == low:
                    return True
            return False

        return ieq
    globs = [compile_glob(v) for v in literals]

    def like(value: str, ctx: Context) -> bool:
        for g in globs:
            if g(value):
                return True
        for t in templates:
            matcher = t.matcher(ctx, compile_tokens)
            if matcher is not None and matcher(value):
                return True
        return False

    return like


def _arn_test(_comparison: str, values: Sequence[str], variables: bool, where: str) -> ValueTest:
    parsed = [parse_template(v, enabled=variables) for v in values]
    matchers = [compile_arn_like(p) for p in parsed if isinstance(p, str)]
    templates = [p for p in parsed if isinstance(p, Template)]

    def arn_like(value: str, ctx: Context) -> bool:
        for m in matchers:
            if m(value):
                return True
        for t in templates:
            matcher = t.matcher(ctx, compile_arn_tokens)
            if matcher is not None and matcher(value):
                return True
        return False

    return arn_like


@lru_cache(maxsize=4096)
def parse_number(text: str) -> Decimal | None:
    """A finite decimal, or ``None`` (request values that are not numbers never match)."""
    if len(text) > 64:
        return None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _numeric_test(comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    numbers = []
    for v in values:
        number = parse_number(v)
        if number is None:
            raise PolicyError(where, f"not a number: {_clip(v)!r}")
        numbers.append(number)
    compare = _COMPARE[comparison]

    def numeric(value: str, _ctx: Context) -> bool:
        number = parse_number(value)
        if number is None:
            return False
        return any(compare(number, n) for n in numbers)

    return numeric


_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})(?:-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
    r"\s*([Zz]|[+-]\d{2}:?\d{2})?",
    re.ASCII,
)
_EPOCH = re.compile(r"-?\d{1,15}(?:\.\d{1,9})?", re.ASCII)


@lru_cache(maxsize=4096)
def parse_date(text: str) -> float | None:
    """Seconds since the epoch for a W3C ISO-8601 date or an epoch number; ``None`` if neither.

    A bare integer is read as epoch seconds (``aws:EpochTime``); times without a zone are UTC.
    """
    text = text.strip()
    if _EPOCH.fullmatch(text):
        return float(text)
    match = _ISO_DATE.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        tz = dt.UTC
        if zone and zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            tz = dt.timezone(sign * offset)
        moment = dt.datetime(
            int(year),
            int(month),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None
    stamp = moment.timestamp()
    if fraction:
        stamp += float(f"0.{fraction}")
    return stamp


def _date_test(comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    stamps = []
    for v in values:
        stamp = parse_date(v)
        if stamp is None:
            raise PolicyError(where, f"not an ISO-8601 date or epoch time: {_clip(v)!r}")
        stamps.append(stamp)
    compare = _COMPARE[comparison]

    def date(value: str, _ctx: Context) -> bool:
        stamp = parse_date(value)
        if stamp is None:
            return False
        return any(compare(stamp, s) for s in stamps)

    return date


def _bool_test(_comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    wanted = set()
    for v in values:
        low = v.lower()
        if low not in ("true", "false"):
            raise PolicyError(where, f"Bool value must be 'true' or 'false', not {_clip(v)!r}")
        wanted.add(low)
    frozen = frozenset(wanted)
    return lambda value, _ctx: value.lower() in frozen


def _decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _binary_test(_comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    blobs = set()
    for v in values:
        blob = _decode_base64(v)
        if blob is None:
            raise PolicyError(where, f"BinaryEquals value is not base64: {_clip(v)!r}")
        blobs.add(blob)
    frozen = frozenset(blobs)

    def binary(value: str, _ctx: Context) -> bool:
        blob = _decode_base64(value)
        return blob is not None and blob in frozen

    return binary


@lru_cache(maxsize=4096)
def _parse_address(text: str) -> tuple[int, int] | None:
    """(IP version, address as int); integers make the range test a mask and a compare."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return address.version, int(address)


def _ip_test(_comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    ranges: list[tuple[int, int, int]] = []
    for v in values:
        try:
            net = ipaddress.ip_network(v.strip(), strict=False)
        except ValueError:
            raise PolicyError(where, f"not an IP address or CIDR block: {_clip(v)!r}") from None
        ranges.append((net.version, int(net.network_address), int(net.netmask)))
    frozen = tuple(ranges)

    def ip(value: str, _ctx: Context) -> bool:
        parsed = _parse_address(value)
        if parsed is None:
            return False
        version, address = parsed
        for net_version, network, mask in frozen:
            if net_version == version and address & mask == network:
                return True
        return False

    return ip


def _null_values(values: Sequence[str], where: str) -> frozenset[bool]:
    wants = set()
    for v in values:
        low = v.lower()
        if low not in ("true", "false"):
            raise PolicyError(where, f"Null value must be 'true' or 'false', not {_clip(v)!r}")
        wants.add(low == "true")
    return frozenset(wants)


_BUILDERS: dict[str, Callable[[str, Sequence[str], bool, str], ValueTest]] = {
    "string": _string_test,
    "arn": _arn_test,
    "numeric": _numeric_test,
    "date": _date_test,
    "bool": _bool_test,
    "binary": _binary_test,
    "ip": _ip_test,
}


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
