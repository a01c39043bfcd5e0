"""Limits on what a client may send before the application sees a request.

uvicorn's httptools protocol reads a request head of any size and waits for it, and for the
body, as long as the client likes. Here a subclass bounds both, at the connection, before
routing and authentication:

- the request line plus headers may hold at most `max_head_bytes`; past that the client gets a
  431 and the connection is closed, whatever it has still to send (a 100 MB header costs the
  server one read, not 100 MB of parsing);
- a request's head must arrive within `request_timeout` seconds of its first byte (or of the
  connection opening), and its body within `request_timeout` seconds of the head: a client
  trickling bytes (slow loris) gets a 408 and loses the connection. The event loop is never
  blocked by a slow client; this bounds the connections it can hold open.

`uvicorn_options(...)` gives the keyword arguments for `uvicorn.Config` that switch this on.
"""

from __future__ import annotations

import enum
import http
import json
import logging
from asyncio import TimerHandle
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from controlplane.errors import (
    RequestHeaderFieldsTooLargeException,
    RequestTimeoutException,
    request_id,
)
from environments.errors import AirdockError

log = logging.getLogger("airdock.http")

MAX_HEAD_BYTES = 32 * 1024  # room for a session token and 50 percent-encoded tag keys
REQUEST_TIMEOUT = 10.0
# After refusing, keep reading (and dropping) briefly so the client can read the answer
# instead of a connection reset; a client that keeps pushing past this is cut off.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024


class _Phase(enum.Enum):
    IDLE = "idle"  # between requests
    HEAD = "head"  # request line and headers arriving
    BODY = "body"  # body arriving
    DONE = "done"  # request read; the application has it


def raw_error(err: AirdockError) -> bytes:
    """A complete rest-json error response that closes the connection."""
    body = json.dumps(err.members()).encode()
    head = (
        f"HTTP/1.1 {err.status} {http.HTTPStatus(err.status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-amzn-ErrorType: {err.code}\r\n"
        f"x-amzn-RequestId: {request_id()}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head and bounded read times."""

    max_head_bytes = MAX_HEAD_BYTES
    request_timeout = REQUEST_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _Phase.IDLE
        self._head_received = 0  # bytes read while the current head is incomplete
        self._head_parsed = 0  # request line and header bytes the parser handed over
        self._deadline: TimerHandle | None = None
        self._refused = False
        self._dropped = 0

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.close()
            return
        if self._phase is not _Phase.BODY:
            self._head_received += len(data)
        super().data_received(data)
        if self._refused or (
            self._phase is _Phase.HEAD and self._head_received > self.max_head_bytes
        ):
            self._refuse_head()

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _Phase.HEAD
        self._head_parsed = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._head_parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_parsed += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_parsed > self.max_head_bytes:
            self._refused = True  # answered once feed_data returns; the app never sees it
            return
        self._phase = _Phase.BODY
        self._head_received = 0
        self._arm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._phase = _Phase.DONE
        self._head_received = 0
        self._disarm()  # from here uvicorn's keep-alive timeout takes over
        super().on_message_complete()

    # --- refusals -----------------------------------------------------------------------

    def _refuse_head(self) -> None:
        log.info("refused a request head over %d bytes from %s", self.max_head_bytes, self.client)
        self._answer_and_close(
            RequestHeaderFieldsTooLargeException(
                f"The request line and headers exceed the limit of {self.max_head_bytes} bytes."
            )
        )

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._phase in (_Phase.IDLE, _Phase.DONE):
            self.transport.close()  # nothing half-sent: an idle connection, closed quietly
            return
        log.info("request from %s not received within %ss", self.client, self.request_timeout)
        cycle = self.cycle
        if self._phase is _Phase.BODY and cycle is not None:
            if cycle.response_started:
                self.transport.close()
                return
            # The application waits for the rest of the body: it now sees a disconnect, and
            # whatever it answers goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self._answer_and_close(
            RequestTimeoutException(
                f"The request was not received within {self.request_timeout:g} seconds."
            )
        )

    def _answer_and_close(self, err: AirdockError) -> None:
        self._refused = True
        self._disarm()
        self.transport.write(raw_error(err))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # --- timer --------------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def uvicorn_options(request_timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config`: the limited protocol and matching timeouts."""
    protocol = type(
        "AirdockHttpProtocol",
        (LimitedHttpToolsProtocol,),
        {"request_timeout": request_timeout},
    )
    return {
        "http": protocol,
        # An idle keep-alive connection is closed after this (uvicorn's own timer).
        "timeout_keep_alive": 5,
    }
