"""Keep SQS long polls from holding the gate, or the journal's mutation lock, while they wait.

moto's ReceiveMessage with WaitTimeSeconds loops inside the request, waiting up to a second at
a time on the queue's condition. Held inside the gate, such a request (up to 20 s, and Celery
workers poll all the time) would stall every snapshot; holding the mutation lock, it would stall
every write. Between those waits the queue is in a consistent state, so the request may step
out of both for the wait itself (the lock first: the gate is always taken before it).

The request's clock is frozen (see clock), so each wait moves it on by the time really waited,
and a replay, which never waits, moves it on by the wait's full length: the poll's deadline
comes either way. A replayed receive runs at its place in the journal, after the messages
sent while it waited.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from environments.emulator.state import clock
from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.gate import RequestGate

if TYPE_CHECKING:
    from environments.emulator.state.journal import Journal

_PATCHED = "_waits_outside_the_gate"
_local = threading.local()


@contextlib.contextmanager
def replaying() -> Iterator[None]:
    _local.replaying = True
    try:
        yield
    finally:
        _local.replaying = False


def wait_outside_the_gate(
    gate: RequestGate, changes: ChangeTracker, journal: Journal | None = None
) -> None:
    from moto.sqs.models import Queue

    original = getattr(Queue.wait_for_messages, "__wrapped__", Queue.wait_for_messages)

    def wait_for_messages(self: Any, timeout: int) -> None:
        if getattr(_local, "replaying", False):
            clock.advance(timeout)
            return
        lock_released = journal.mutation_lock_released() if journal else contextlib.nullcontext()
        with lock_released, gate.paused() as first_pause:
            if first_pause:
                # Before its first wait the request may have moved messages to a dead-letter
                # queue; a snapshot taken during the wait must include that.
                changes.mark()
            started = time.monotonic()
            original(self, timeout)
            clock.advance(time.monotonic() - started)

    wait_for_messages.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(wait_for_messages, _PATCHED, True)
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]
