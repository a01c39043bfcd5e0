"""A write taken by an API worker wakes the background worker's reconciler at once.

A pipe the supervisor creates before it forks: API workers inherit the writing end, the
background worker reads the other. The supervisor keeps both ends open, so the pipe outlives
any child's restart. A write never blocks a request: when the pipe is full, a wake-up is
already pending and the byte is dropped. Without it the reconciler still finds the work on its
next pass (--poll-interval).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable


class WakeupPipe:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"!")

    def listen(self, on_wake: Callable[[], None]) -> threading.Thread:
        """In the background worker: call `on_wake` for every batch of wake-ups, in a daemon
        thread."""

        def pump() -> None:
            while True:
                try:
                    if not os.read(self._read, 4096):
                        return
                except OSError:
                    return
                on_wake()

        thread = threading.Thread(target=pump, name="wakeups", daemon=True)
        thread.start()
        return thread
