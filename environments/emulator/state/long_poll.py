"""Keep SQS long polls from holding the gate while they wait for messages.

moto's ReceiveMessage with WaitTimeSeconds loops inside the request, waiting up to a second at
a time on the queue's condition. Held inside the gate, such a request (up to 20 s, and Celery
workers poll all the time) would stall every snapshot. Between those waits the queue is in a
consistent state, so the request may step out of the gate for the wait itself.
"""

from __future__ import annotations

from typing import Any

from environments.emulator.state.changes import ChangeTracker
from environments.emulator.state.gate import RequestGate

_PATCHED = "_waits_outside_the_gate"


def wait_outside_the_gate(gate: RequestGate, changes: ChangeTracker) -> None:
    from moto.sqs.models import Queue

    original = Queue.wait_for_messages
    if getattr(original, _PATCHED, False):
        return

    def wait_for_messages(self: Any, timeout: int) -> None:
        with gate.paused() as first_pause:
            if first_pause:
                # Before its first wait the request may have moved messages to a dead-letter
                # queue; a snapshot taken during the wait must include that.
                changes.mark()
            original(self, timeout)

    setattr(wait_for_messages, _PATCHED, True)
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]
