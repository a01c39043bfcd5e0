"""A clock that a replay of the journal can reproduce.

moto stamps what it creates (CreateDate, LastModified, log ingestion times, visibility
deadlines) through moto.core.utils.utcnow, which most modules import by name. A mutating
request runs with the clock of its thread frozen at the instant the journal records, so a
replay stamps the same times. The function's code is swapped in place, which reaches every
module that imported it, including those moto loads later.

A long poll moves its frozen clock on by the time it really waited (see long_poll), so its
deadline still comes.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()
_HOOK = "_airdock_clock_now"


def now() -> datetime.datetime:
    """Naive UTC, like moto's own utcnow: the frozen instant if there is one."""
    frozen = getattr(_local, "frozen", None)
    if frozen is not None:
        return frozen
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@contextmanager
def frozen_at(timestamp: float) -> Iterator[None]:
    previous = getattr(_local, "frozen", None)
    instant = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    _local.frozen = instant.replace(tzinfo=None)
    try:
        yield
    finally:
        _local.frozen = previous


def advance(seconds: float) -> None:
    frozen = getattr(_local, "frozen", None)
    if frozen is not None:
        _local.frozen = frozen + datetime.timedelta(seconds=seconds)


def _utcnow_through_hook() -> datetime.datetime:
    # Runs with moto.core.utils' globals once its code is swapped in, hence the hook's name.
    return _airdock_clock_now()  # type: ignore[name-defined]  # noqa: F821


def install() -> None:
    from moto.core import utils

    if getattr(utils, _HOOK, None) is now:
        return
    setattr(utils, _HOOK, now)
    utils.utcnow.__code__ = _utcnow_through_hook.__code__
