"""Repeated identical log lines, bounded.

A fault that persists (an unreachable endpoint, a bad object in a bucket, a bug hit on every
pass) would otherwise log the same line, often with a traceback, on every pass of a loop, for
as long as it lasts. `RepeatLimiter` lets the first line of a run through, then at most one per
`interval` seconds for the same key; each line that gets through says how many were held back
since the previous one, so nothing goes uncounted. The keys it remembers are bounded too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Seen:
    last_logged: float
    held_back: int = 0


class RepeatLimiter:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 300.0,
        *,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[Hashable, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def log(
        self,
        level: int,
        key: Hashable,
        msg: str,
        *args: object,
        exc_info: bool = False,
    ) -> bool:
        """Log `msg % args` unless a line with `key` was logged less than `interval` seconds
        ago; True when it was logged."""
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.last_logged < self._interval:
                seen.held_back += 1
                self._seen.move_to_end(key)
                return False
            held_back = seen.held_back if seen is not None else 0
            self._seen[key] = _Seen(last_logged=now)
            self._seen.move_to_end(key)
            while len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
        if held_back:
            msg += " (%d more like this since the previous one were not logged)"
            args = (*args, held_back)
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.WARNING, key, msg, *args, exc_info=exc_info)

    def error(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)

    def forget(self, key: Hashable) -> None:
        """Start afresh for `key` (the condition it reported has ended)."""
        with self._lock:
            self._seen.pop(key, None)
