"""Exclusive locks between processes, on a lock file (flock).

The kernel drops a flock when its holder's file is closed, including when the process dies, so
a crash never leaves a stale lock behind. flock itself cannot wait with a time limit: a lock
with a timeout is tried without blocking, again and again, until it is free or time is up.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

POLL_SECONDS = 0.1


class LockTimeout(TimeoutError):
    """The lock was still held by someone else when the time to wait for it ran out."""


class FileLock:
    """An exclusive lock on `path` (created 0600 if missing), held from acquire() until
    release() or until the process ends; also a context manager.

    `timeout` is how long acquire() waits: None, as long as it takes; 0, a single try; else up
    to that many seconds. When it runs out, LockTimeout.
    """

    def __init__(self, path: Path, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire(self) -> None:
        if self.timeout is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return
        deadline = time.monotonic() + self.timeout
        while not self.try_acquire():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(f"{self.path} is locked by another process")
            time.sleep(min(POLL_SECONDS, remaining))

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the lock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    def _open(self) -> int:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this FileLock")
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
