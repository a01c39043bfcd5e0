"""The one way tests wait: poll the real condition, and fail saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str],
) -> T:
    """Call `condition` every `interval` seconds until it returns something truthy, and return
    that. After `timeout` seconds the test fails with an AssertionError naming `message`
    (what was awaited; a callable is asked at that moment, so it can tell the latest state).
    Exceptions from `condition` are not caught: a condition that may fail says so itself."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = message() if callable(message) else message
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(min(interval, remaining))
