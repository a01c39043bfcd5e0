"""A shared/exclusive gate between request threads and the snapshot writer.

Requests share the gate, as moto already serves them concurrently. The snapshot writer takes it
exclusively, so it pickles a state that no request is halfway through changing. A waiting writer
holds new requests back; otherwise a steady stream of requests could postpone snapshots forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class GateTimeout(Exception):
    """Requests kept the gate busy for longer than the writer was willing to wait."""


class RequestGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writers_waiting = 0
        self._writer_active = False
        self._closed = False
        self._local = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth = self._depth()
        if depth:
            # A nested entry must not queue behind a waiting writer: that writer is waiting
            # for this very thread to leave.
            self._local.depth = depth + 1
        else:
            self._acquire_shared()
            self._local.depth = 1
            self._local.paused_once = False
        try:
            yield
        finally:
            self._local.depth -= 1
            if self._local.depth == 0:
                self._release_shared()

    @contextmanager
    def paused(self) -> Iterator[bool]:
        """Step out of the gate while a request blocks on purpose (an SQS long poll).

        Yields True the first time the current request pauses, so a caller can note changes
        made before the pause once instead of on every poll.
        """
        depth = self._depth()
        if not depth:
            yield False
            return
        first = not self._local.paused_once
        self._local.paused_once = True
        self._local.depth = 0
        self._release_shared()
        try:
            yield first
        finally:
            self._acquire_shared()
            self._local.depth = depth

    @contextmanager
    def exclusive(self, timeout: float) -> Iterator[None]:
        self._acquire_exclusive(timeout)
        try:
            yield
        finally:
            with self._cond:
                self._writer_active = False
                self._cond.notify_all()

    def close(self, timeout: float) -> None:
        """Take the gate for good: after the final snapshot no request may change state."""
        self._acquire_exclusive(timeout)
        with self._cond:
            self._closed = True

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def _acquire_shared(self) -> None:
        with self._cond:
            while self._writer_active or self._writers_waiting or self._closed:
                self._cond.wait()
            self._readers += 1

    def _release_shared(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def _acquire_exclusive(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._readers or self._writer_active:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise GateTimeout(f"{self._readers} request(s) still running")
                    self._cond.wait(remaining)
                self._writer_active = True
            finally:
                self._writers_waiting -= 1
                # Requests held back by this writer may go on, whether it got the gate or not.
                self._cond.notify_all()
