"""Running a mutating request so that a replay of its journal record does the same.

The live request and its replay both go through `deterministic`: the same seed for moto's
randomness and the same frozen instant for its clock. A record keeps the request as the WSGI
app saw it (method, path, query, headers) and its body.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from environments.emulator.state import clock, long_poll, randomness
from environments.emulator.state.blobs import BlobStore
from environments.emulator.state.errors import CorruptState
from environments.emulator.state.journal_file import Record

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]

# The parts of the WSGI environ a moto handler reads; the rest is per-connection plumbing.
_RECORDED = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REQUEST_URI",
        "RAW_URI",
        "REMOTE_ADDR",
        "wsgi.url_scheme",
    }
)


class Collected:
    """A WSGI response held back until it may leave (once its record is durable)."""

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    def start_response(self, status: str, headers: list[tuple[str, str]], _exc: Any = None) -> Any:
        self.status, self.headers = status, list(headers)
        return self.chunks.append

    def send(self, start_response: Callable[..., Any]) -> list[bytes]:
        start_response(self.status, self.headers)
        return self.chunks


def collect(app: WsgiApp, environ: dict[str, Any]) -> Collected:
    collected = Collected()
    result = app(environ, collected.start_response)
    try:
        collected.chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return collected


@contextmanager
def deterministic(seed: int, when: float) -> Iterator[None]:
    with randomness.seeded(seed), clock.frozen_at(when):
        yield


def recorded_environ(environ: dict[str, Any]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if isinstance(value, str) and (key in _RECORDED or key.startswith("HTTP_"))
    }


@dataclass
class Replayed:
    applied: int = 0
    errors: int = 0


def replay(app: WsgiApp, records: list[Record], blobs: BlobStore) -> Replayed:
    """Apply journaled requests in order. A request that failed live fails again, which is as
    it should be; a record whose body is missing from the blob store ends the replay there."""
    done = Replayed()
    with long_poll.replaying():
        for record in records:
            meta = record.meta
            try:
                body = blobs.read(meta["blob"]) if meta.get("blob") else record.body
            except CorruptState as error:
                log.error("journal replay stopped at record %d: %s", record.seq, error)
                break
            environ: dict[str, Any] = {
                **meta["environ"],
                "wsgi.input": io.BytesIO(body),
                "wsgi.input_terminated": True,
                "wsgi.errors": sys.stderr,
                "wsgi.version": (1, 0),
                "wsgi.multithread": False,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
            try:
                with deterministic(meta["seed"], meta["time"]):
                    status = collect(app, environ).status_code
            except Exception as error:
                log.warning("replaying journal record %d raised %r", record.seq, error)
                status = 500
            done.applied += 1
            done.errors += status >= 400
    return done
