"""Validate request members against botocore's own `mwaa` service model.

botocore checks almost nothing client-side (required members, types and `min`), so the server
must enforce every `max`, `pattern`, `enum`, list size and map size itself. Reading the
constraints from the model that boto3 ships keeps us exactly in step with the wire contract
instead of copying it by hand. Messages follow AWS's wording:
"1 validation error detected: Value 'x' at 'Name' failed to satisfy constraint: ...".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cache
from typing import Any

import regex
from botocore.model import ServiceModel, Shape

from environments.errors import ValidationException
from environments.plumbing import botocore_data

SERVICE_NAME = "mwaa"
_MAX_ERRORS_IN_MESSAGE = 10


@cache
def service_model() -> ServiceModel:
    return botocore_data.new_session().get_service_model(SERVICE_NAME)


@cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    # AWS anchors every model pattern; `regex` understands the \p{L} classes TagMap uses.
    return regex.compile(pattern)


def input_shape(operation: str) -> Shape:
    shape = service_model().operation_model(operation).input_shape
    if shape is None:  # pragma: no cover - every mwaa operation has an input
        raise LookupError(operation)
    return shape


def body_members(operation: str) -> set[str]:
    """Members of an operation's input that travel in the JSON body (not URI or query)."""
    shape = input_shape(operation)
    return {n for n, m in shape.members.items() if not m.serialization.get("location")}


def validate(operation: str, params: dict[str, Any]) -> None:
    """Raise ValidationException listing every violated constraint; return quietly when valid."""
    shape = input_shape(operation)
    problems = list(_check_structure(shape, params, path=""))
    if problems:
        raise ValidationException(format_problems(problems))


def format_problems(problems: list[str]) -> str:
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    shown = "; ".join(problems[:_MAX_ERRORS_IN_MESSAGE])
    return f"{count} validation {noun} detected: {shown}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _show(value: Any, sensitive: bool) -> str:
    if sensitive:
        return "***"
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _check_structure(shape: Shape, value: Any, path: str, sensitive: bool = False) -> Iterator[str]:
    where = path or "request"
    if not isinstance(value, dict):
        yield f"Value at '{where}' failed to satisfy constraint: Member must be an object"
        return
    members = shape.members
    for name in value:
        if name not in members:
            yield f"Unknown member '{name}' at '{where}'"
    for name in shape.required_members:
        if value.get(name) is None:
            yield (
                f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                "Member must not be null"
            )
    for name, member in members.items():
        if name in value and value[name] is not None:
            yield from _check(member, value[name], _join(path, name), sensitive)


def _check(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    sensitive = sensitive or bool(shape.metadata.get("sensitive"))
    kind = shape.type_name
    if shape.metadata.get("document"):
        return  # any JSON value is a valid document
    checker = _CHECKERS.get(kind)
    if checker is None:  # pragma: no cover - the mwaa model uses only the kinds below
        return
    yield from checker(shape, value, path, sensitive)


def _fail(value: Any, path: str, sensitive: bool, constraint: str) -> str:
    return (
        f"Value '{_show(value, sensitive)}' at '{path}' failed to satisfy constraint: "
        f"Member must {constraint}"
    )


def _check_string(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if not isinstance(value, str):
        yield f"Value at '{path}' failed to satisfy constraint: Member must be a string"
        return
    yield from _check_bounds(shape, len(value), "length", value, path, sensitive)
    enum = shape.enum
    if enum and value not in enum:
        yield _fail(value, path, sensitive, f"satisfy enum value set: [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        yield _fail(value, path, sensitive, f"satisfy regular expression pattern: {pattern}")


def _check_integer(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        yield f"Value at '{path}' failed to satisfy constraint: Member must be an integer"
        return
    yield from _check_bounds(shape, value, "value", value, path, sensitive)


def _check_number(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        yield f"Value at '{path}' failed to satisfy constraint: Member must be a number"


def _check_boolean(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if not isinstance(value, bool):
        yield f"Value at '{path}' failed to satisfy constraint: Member must be a boolean"


def _check_timestamp(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return
        except ValueError:
            pass
    yield f"Value at '{path}' failed to satisfy constraint: Member must be a timestamp"


def _check_list(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if not isinstance(value, list):
        yield f"Value at '{path}' failed to satisfy constraint: Member must be a list"
        return
    yield from _check_bounds(shape, len(value), "length", value, path, sensitive)
    for index, item in enumerate(value):
        yield from _check(shape.member, item, f"{path}.{index + 1}.member", sensitive)


def _check_map(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    if not isinstance(value, dict):
        yield f"Value at '{path}' failed to satisfy constraint: Member must be a map"
        return
    yield from _check_bounds(shape, len(value), "length", value, path, sensitive)
    for key, item in value.items():
        yield from _check(shape.key, key, f"{path}.key", False)
        yield from _check(shape.value, item, f"{path}.{key}", sensitive)


def _check_bounds(
    shape: Shape, measure: int, what: str, value: Any, path: str, sensitive: bool
) -> Iterator[str]:
    """The model's min and max on `measure`: a string's or a list's length, or a number."""
    meta = shape.metadata
    if "min" in meta and measure < meta["min"]:
        yield _fail(value, path, sensitive, f"have {what} greater than or equal to {meta['min']}")
    if "max" in meta and measure > meta["max"]:
        yield _fail(value, path, sensitive, f"have {what} less than or equal to {meta['max']}")


def _check_struct_member(shape: Shape, value: Any, path: str, sensitive: bool) -> Iterator[str]:
    yield from _check_structure(shape, value, path, sensitive)


_CHECKERS = {
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "double": _check_number,
    "float": _check_number,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "list": _check_list,
    "map": _check_map,
    "structure": _check_struct_member,
}
