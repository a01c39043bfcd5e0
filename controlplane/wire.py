"""rest-json request reading and response writing, shared by every route."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from controlplane.errors import (
    RequestEntityTooLargeException,
    RequestTimeoutException,
    SerializationException,
    request_id,
)
from environments.errors import ValidationException

MAX_BODY_BYTES = 1024 * 1024
# The mwaa model nests at most five levels; InvokeRestApi's free-form Body gets room to spare.
MAX_JSON_DEPTH = 64


async def read_body(request: Request) -> bytes:
    """The raw body, refused before reading when it announces more than 1 MiB."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise SerializationException("Content-Length is not a number.") from None
        if size > MAX_BODY_BYTES:
            raise _too_large()
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # The connection went away mid-body (or http_limits cut a trickling client off):
        # nobody reads the answer, but the request still ends as a refusal, not a crash.
        raise RequestTimeoutException("The request body was not received.") from None
    return b"".join(chunks)


def _too_large() -> RequestEntityTooLargeException:
    return RequestEntityTooLargeException(
        f"The request body exceeds the limit of {MAX_BODY_BYTES} bytes."
    )


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError):
        raise SerializationException("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise SerializationException("The request body must be a JSON object.")
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> ValidationException:
    return ValidationException(
        f"The request body nests JSON objects and arrays deeper than {MAX_JSON_DEPTH} levels."
    )


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit`; iterative, so no depth can overflow it."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def encode_json(payload: dict[str, Any]) -> bytes:
    """Compact JSON; orjson on the hot path, the standard library for what orjson refuses
    (integers beyond 64 bits, which a client may have sent and we stored as given)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, separators=(",", ":")).encode()


def json_response(payload: dict[str, Any]) -> Response:
    return Response(
        content=encode_json(payload),
        media_type="application/json",
        headers={"x-amzn-RequestId": request_id()},
    )


def query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationException(
            f"1 validation error detected: Value '{raw[:50]}' at '{name}' failed to satisfy "
            "constraint: Member must be an integer",
        ) from None
