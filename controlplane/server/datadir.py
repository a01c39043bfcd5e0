"""One `airdock serve` per data dir.

The lock is a flock on `<data dir>/serve.lock`, taken before the server writes anything else
there; `serve.pid` beside it names the holder. The kernel drops the lock when the last process
holding it ends, and the supervisor's forked children inherit it: a data dir stays taken until
the whole process tree of its server is gone, so a new server never overlaps a dying one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from environments.plumbing import processes
from environments.plumbing.files import atomic_write
from environments.plumbing.locks import FileLock

LOCK_FILE = "serve.lock"
PID_FILE = "serve.pid"
# After its supervisor is killed, a server's children take a few seconds to wind down (the
# embedded AWS writes its final snapshot); a new server waits that long for them.
SUCCESSOR_WAIT_SECONDS = 20.0


class DataDirInUse(Exception):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.data_dir = data_dir
        self.pid = pid
        holder = f"pid {pid}" if pid else "a process that did not record its pid"
        super().__init__(f"{data_dir} is in use by another airdock serve ({holder})")


def _recorded_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def claim(data_dir: Path, wait: float = SUCCESSOR_WAIT_SECONDS) -> FileLock:
    """Take the data dir for this process, or raise DataDirInUse naming the holder.

    A holder that is still running is refused at once. When the recorded server is gone but
    its children still hold the lock, this waits up to `wait` seconds for them to finish.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(data_dir / LOCK_FILE)
    deadline = time.monotonic() + wait
    while not lock.try_acquire():
        pid = _recorded_pid(data_dir)
        if (pid is not None and processes.is_running(pid)) or time.monotonic() >= deadline:
            raise DataDirInUse(data_dir, pid)
        time.sleep(0.1)
    atomic_write(data_dir / PID_FILE, f"{os.getpid()}\n", mode=0o600)
    return lock
