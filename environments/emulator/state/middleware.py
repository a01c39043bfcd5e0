"""The WSGI layer that runs each request inside the gate and, with a journal, makes it durable.

The request body is read before entering the gate and the response is collected before
leaving it, so a slow client never holds the gate while the network is busy: inside the gate
there is only moto's own work.

With a journal, a mutating request is journaled and then run under the journal's mutation
lock with replayable randomness and clock, and its response leaves only once its record is
durable. A read's response leaves only once every change it
may have seen is durable. Without one (the snapshot-only mode), requests are just reported to
the change tracker, and a crash loses the changes since the last snapshot.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from environments.emulator.state import randomness
from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.gate import RequestGate
from environments.emulator.state.journal import Journal, JournalBroken
from environments.emulator.state.operations import is_read_only, operation_name
from environments.emulator.state.replay import Collected, collect, deterministic, recorded_environ

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Calls that may wait inside moto (see long_poll), letting other writes run meanwhile. They are
# journaled when they end, at the place in the order where their outcome was decided.
_MAY_WAIT = frozenset({"ReceiveMessage"})

_UNAVAILABLE = (
    b"<ErrorResponse><Error><Code>ServiceUnavailable</Code><Message>The embedded AWS cannot "
    b"make changes durable (see its log)</Message></Error></ErrorResponse>"
)


class PersistenceMiddleware:
    def __init__(
        self,
        app: WsgiApp,
        gate: RequestGate,
        changes: ChangeTracker,
        journal: Journal | None = None,
    ) -> None:
        self._app = app
        self._gate = gate
        self._changes = changes
        self._journal = journal

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = _buffer_body(environ)
        mutating = not is_read_only(environ, body)
        try:
            if self._journal is None:
                response = self._unjournaled(environ, mutating)
            elif mutating:
                response = self._journaled(self._journal, environ, body)
            else:
                with self._gate.shared():
                    response = collect(self._app, environ)
                self._journal.wait_for_reads()
        except JournalBroken:
            start_response("503 Service Unavailable", [("Content-Type", "application/xml")])
            return [_UNAVAILABLE]
        return response.send(start_response)

    def _unjournaled(self, environ: dict[str, Any], mutating: bool) -> Collected:
        with self._gate.shared():
            try:
                return collect(self._app, environ)
            finally:
                self._changes.note_request(mutating)

    def _journaled(self, journal: Journal, environ: dict[str, Any], body: bytes) -> Collected:
        blob = journal.stash_body(body)
        meta: dict[str, Any] = {
            "environ": recorded_environ(environ),
            "seed": randomness.new_seed(),
            "time": time.time(),
        }
        if operation_name(environ, body) in _MAY_WAIT:
            with self._gate.shared(), journal.mutating():
                try:
                    with deterministic(meta["seed"], meta["time"]):
                        response = collect(self._app, environ)
                finally:
                    seq = journal.append(meta, body, blob)
        else:
            with self._gate.shared(), journal.mutating():
                # Journaled first, so the flusher syncs it while moto works. A request that
                # then fails is replayed alike: it may have changed something before failing.
                seq = journal.append(meta, body, blob)
                with deterministic(meta["seed"], meta["time"]):
                    response = collect(self._app, environ)
        journal.wait_durable(seq)
        return response


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
