"""Hypothesis strategies for MWAA requests, derived from botocore's `mwaa` service model.

For each operation the model says where every input member goes (path, query string or JSON
body) and what it looks like (type, length, range, pattern, enum). A request is drawn from
that, mixing values that satisfy the constraints, values just outside them, values of the
wrong type, and raw garbage bodies, so both the validation and the service behind it run.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import botocore.session
from botocore.model import OperationModel, Shape
from hypothesis import strategies as st

MAX_DEPTH = 6

# Any JSON value: what a confused or hostile client might put anywhere.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Request:
    operation: str
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    signed: bool = True

    @property
    def target(self) -> str:
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path


@functools.cache
def model():
    return botocore.session.get_session().get_service_model("mwaa")


def _pattern(shape: Shape) -> st.SearchStrategy[str] | None:
    pattern = shape.metadata.get("pattern")
    if not pattern:
        return None
    try:
        re.compile(pattern)
        return st.from_regex(pattern, fullmatch=True)
    except re.error:
        return None  # Java-only syntax such as \p{L}: plain text stands in


def _string(shape: Shape) -> st.SearchStrategy[str]:
    enum = shape.metadata.get("enum")
    if enum:
        return st.sampled_from(enum) | st.text(max_size=12)
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 64)
    options = [
        st.text(min_size=low, max_size=min(high, 40)),
        # At and just past the length limit; one repeated character keeps drawing cheap. No
        # surrogates, as st.text() draws none: no client can encode them in UTF-8 to send.
        st.tuples(st.characters(exclude_categories=["Cs"]), st.sampled_from([high, high + 1])).map(
            lambda c: c[0] * c[1]
        ),
    ]
    pattern = _pattern(shape)
    if pattern is not None:
        options.append(pattern.filter(lambda s: low <= len(s) <= high))
    return st.one_of(options)


def _integer(shape: Shape) -> st.SearchStrategy[int]:
    low = shape.metadata.get("min", -(2**31))
    high = shape.metadata.get("max", 2**31)
    return st.integers(low - 2, high + 2) | st.integers()


_built: dict[tuple[str, int], st.SearchStrategy[Any]] = {}


def value_of(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """A value for `shape`: usually of its type, sometimes any JSON value instead. Built once
    per shape and depth: constructing strategies costs far more than drawing from them."""
    key = (shape.name, depth)
    if key not in _built:
        if depth > MAX_DEPTH:
            _built[key] = st.none()
        else:
            typed = _typed(shape, depth)
            _built[key] = st.one_of(typed, json_values) if depth else typed
    return _built[key]


def _typed(shape: Shape, depth: int) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if shape.metadata.get("document"):
        return json_values
    if kind == "string":
        return _string(shape)
    if kind == "integer" or kind == "long":
        return _integer(shape)
    if kind == "boolean":
        return st.booleans()
    if kind in ("double", "float"):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers()
    if kind == "timestamp":
        return st.integers(-(2**40), 2**40) | st.text(max_size=30)
    if kind == "list":
        high = min(shape.metadata.get("max", 4), 6) + 1
        return st.lists(value_of(shape.member, depth + 1), max_size=high)
    if kind == "map":
        return st.dictionaries(value_of(shape.key, 0), value_of(shape.value, depth + 1), max_size=5)
    if kind == "structure":
        members = {
            name: value_of(member, depth + 1)
            for name, member in shape.members.items()
            if member.serialization.get("location") is None
        }
        return st.fixed_dictionaries({}, optional=members)
    return json_values


@st.composite
def requests(draw: st.DrawFn, names: list[str], arn_of) -> Request:
    """One request to one of the model's operations, signed or not, well-formed or not."""
    operation: OperationModel = model().operation_model(
        draw(st.sampled_from(sorted(model().operation_names)))
    )
    method, uri = operation.http["method"], operation.http["requestUri"]
    shape = operation.input_shape
    path, query, body_members = uri, [], {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if member.name == "EnvironmentArn":
                known = st.sampled_from(names).map(arn_of)
            else:
                known = st.sampled_from(names)
            value = draw(known | value_of(member, 0))
            path = path.replace("{" + wire_name + "}", quote(str(value), safe=""))
        elif location == "querystring":
            if draw(st.booleans()):
                raw = draw(value_of(member, 1))
                for item in raw if isinstance(raw, list) else [raw]:
                    query.append((wire_name, str(item)))
        elif draw(st.integers(0, 3)) > 0 or name in shape.required_members:
            body_members[name] = draw(value_of(member, 1))
    garbage = draw(st.integers(0, 9))
    if garbage == 0:
        body = draw(st.binary(max_size=200))
    elif garbage == 1:
        body = json.dumps(draw(json_values)).encode()
    else:
        body = json.dumps(body_members).encode() if body_members or method != "GET" else b""
    return Request(
        operation=operation.name,
        method=method,
        path=path.split("?")[0],
        query=query,
        body=body if method != "GET" else b"",
        signed=draw(st.integers(0, 19)) > 0,
    )


@st.composite
def valid_writes(draw: st.DrawFn, names: list[str], arn_of, create_params: dict) -> Request:
    """A create, update or tag that passes validation, so the service's own paths run too."""
    name = draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["create", "update", "tag", "untag", "delete"]))
    tags = st.dictionaries(
        st.sampled_from(["team", "owner", "cost", "x"]), st.text("abc", min_size=1), max_size=3
    )
    if kind == "create":
        params = {**create_params, "Tags": draw(tags.filter(bool))}
        if draw(st.booleans()):
            params["MaxWorkers"] = draw(st.integers(1, 25))
        return Request("CreateEnvironment", "PUT", f"/environments/{name}", body=_dump(params))
    if kind == "update":
        params = {"MaxWorkers": draw(st.integers(1, 25))}
        return Request("UpdateEnvironment", "PATCH", f"/environments/{name}", body=_dump(params))
    target = "/tags/" + quote(arn_of(name), safe="")
    if kind == "tag":
        body = _dump({"Tags": draw(tags.filter(bool))})
        return Request("TagResource", "POST", target, body=body)
    if kind == "untag":
        keys = draw(st.lists(st.sampled_from(["team", "owner", "cost"]), min_size=1, max_size=3))
        return Request("UntagResource", "DELETE", target, query=[("tagKeys", k) for k in keys])
    return Request("DeleteEnvironment", "DELETE", f"/environments/{name}")


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()
