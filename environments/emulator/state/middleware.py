"""The WSGI layer that runs each request inside the gate and reports it to the change tracker.

The request body is read before entering the gate and the response is collected before
leaving it, so a slow client never holds the gate while the network is busy: inside the gate
there is only moto's own work.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.gate import RequestGate
from environments.emulator.state.operations import is_read_only

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PersistenceMiddleware:
    def __init__(self, app: WsgiApp, gate: RequestGate, changes: ChangeTracker) -> None:
        self._app = app
        self._gate = gate
        self._changes = changes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = _buffer_body(environ)
        mutating = not is_read_only(environ, body)
        with self._gate.shared():
            try:
                result = self._app(environ, start_response)
                try:
                    return list(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                self._changes.note_request(mutating)


def _buffer_body(environ: dict[str, Any]) -> bytes:
    """Read the whole request body and hand the app an in-memory copy of it."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    if length > 0:
        body = _read_exactly(stream, length)
    elif environ.get("wsgi.input_terminated"):
        # A chunked upload that the server already de-chunks: read it to its end.
        body = stream.read()
    else:
        # No body announced: reading would wait on the socket for nothing.
        return b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _read_exactly(stream: Any, length: int) -> bytes:
    parts: list[bytes] = []
    remaining = length
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
