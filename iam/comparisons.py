"""How one request value is compared with the values a condition lists, per operator family.

Each family (string, ARN, numeric, date, bool, binary, IP) turns the policy values into a
:data:`ValueTest` once, when the policy is compiled: ``test(request_value, context)`` says
whether the request value matches any of them. Negation, ``IfExists``, set qualifiers and absent
keys are not decided here but in :mod:`iam.conditions`.
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

from iam.errors import PolicyError, clip
from iam.matching import (
    Matcher,
    Token,
    compile_arn_like,
    compile_arn_tokens,
    compile_glob,
    compile_tokens,
)
from iam.variables import ContextValue, Template, parse_template

Context = Mapping[str, ContextValue]
ValueTest = Callable[[str, Context], bool]

_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
}


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
    return _pattern_test([compile_glob(v) for v in literals], templates, compile_tokens)


def _arn_test(_comparison: str, values: Sequence[str], variables: bool, where: str) -> ValueTest:
    parsed = [parse_template(v, enabled=variables) for v in values]
    matchers = [compile_arn_like(p) for p in parsed if isinstance(p, str)]
    templates = [p for p in parsed if isinstance(p, Template)]
    return _pattern_test(matchers, templates, compile_arn_tokens)


def _pattern_test(
    matchers: Sequence[Matcher],
    templates: Sequence[Template],
    compile_pattern: Callable[[tuple[Token, ...]], Matcher],
) -> ValueTest:
    """Wildcard patterns: fixed ones compiled now, those with variables per request context."""

    def like(value: str, ctx: Context) -> bool:
        for m in matchers:
            if m(value):
                return True
        for t in templates:
            matcher = t.matcher(ctx, compile_pattern)
            if matcher is not None and matcher(value):
                return True
        return False

    return like


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


def _ordered_test(
    comparison: str,
    values: Sequence[str],
    parse: Callable[[str], object | None],
    what: str,
    where: str,
) -> ValueTest:
    """Numbers and dates: ``parse`` reads both sides; a request value it cannot read never
    matches, a policy value it cannot read is an error (``what`` names the expected form)."""
    bounds = []
    for v in values:
        bound = parse(v)
        if bound is None:
            raise PolicyError(where, f"not {what}: {clip(v)!r}")
        bounds.append(bound)
    compare = _COMPARE[comparison]

    def ordered(value: str, _ctx: Context) -> bool:
        parsed = parse(value)
        if parsed is None:
            return False
        return any(compare(parsed, b) for b in bounds)

    return ordered


def _numeric_test(comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    return _ordered_test(comparison, values, parse_number, "a number", where)


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
    return _ordered_test(comparison, values, parse_date, "an ISO-8601 date or epoch time", where)


def _bool_test(_comparison: str, values: Sequence[str], _vars: bool, where: str) -> ValueTest:
    wanted = set()
    for v in values:
        low = v.lower()
        if low not in ("true", "false"):
            raise PolicyError(where, f"Bool value must be 'true' or 'false', not {clip(v)!r}")
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
            raise PolicyError(where, f"BinaryEquals value is not base64: {clip(v)!r}")
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
            raise PolicyError(where, f"not an IP address or CIDR block: {clip(v)!r}") from None
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


_BUILDERS: dict[str, Callable[[str, Sequence[str], bool, str], ValueTest]] = {
    "string": _string_test,
    "arn": _arn_test,
    "numeric": _numeric_test,
    "date": _date_test,
    "bool": _bool_test,
    "binary": _binary_test,
    "ip": _ip_test,
}


def value_test(
    family: str, comparison: str, values: Sequence[str], *, variables: bool, where: str
) -> ValueTest:
    """The test for one operator family and comparison against the policy ``values``.

    Policy values are parsed here, once: a value the family cannot read raises
    :class:`PolicyError` at ``where``.
    """
    return _BUILDERS[family](comparison, values, variables, where)
