"""Supervised parts: start them in order, restart any that dies with backoff, stop in reverse.

A part is anything with `start()` (returns once it is ready, raises when it cannot start),
`alive()` and `stop()` (idempotent, reaps what it started): the embedded AWS, the embedded
PostgreSQL, or a `ForkedProcess` running a function of ours. Adding a dependency to
`airdock serve` is one more `Supervised(name, part)` in its list.

The supervisor is single-threaded: it forks children, and a fork must not copy a thread that
holds a lock. It checks its parts every TICK_SECONDS; a start blocks that loop, which is fine
for the few seconds a dependency takes.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from controlplane.server.status import DOWN, STARTING, STOPPED, UP, PartState, write_status
from environments.plumbing import processes
from environments.plumbing.forking import ForkedCall, fork_call

log = logging.getLogger("airdock.serve")

TICK_SECONDS = 0.1
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# A part that has stayed up this long starts again from the first backoff step when it dies.
STABLE_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


class Part(Protocol):
    def start(self) -> None: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


def backoff(failures: int) -> float:
    """Seconds to wait before start number `failures` + 1 of a part that keeps dying."""
    return min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, failures - 1))


class ForkedProcess:
    """A function of ours run in a child forked from the supervisor (environments.plumbing.forking).

    The child shares the supervisor's imported modules copy-on-write, starts a session of its
    own (a Ctrl-C at the terminal reaches the supervisor alone, which stops the children in
    order) and dies with the supervisor (PR_SET_PDEATHSIG). `main` returns an exit status.
    """

    def __init__(self, main: Callable[[], int | None], grace: float = STOP_GRACE_SECONDS) -> None:
        self._main = main
        self._grace = grace
        self._call: ForkedCall | None = None
        self.last_exit: str | None = None

    @property
    def pid(self) -> int | None:
        return self._call.pid if self._call is not None else None

    def start(self) -> None:
        if not self.alive():
            self._call = fork_call(self._main, name=getattr(self._main, "__name__", "part"))

    def alive(self) -> bool:
        if self._call is None:
            return False
        code = self._call.poll()
        if code is None:
            return True
        self.last_exit = processes.describe_exit(code)
        self._call = None
        return False

    def stop(self) -> None:
        if self.alive():
            assert self._call is not None
            processes.kill_group(self._call, grace=self._grace)
            self._call = None


@dataclass
class Supervised:
    name: str
    part: Part
    status: PartState = field(default_factory=PartState)
    failures: int = 0  # deaths since it was last stable
    next_start: float = 0.0

    @property
    def pid(self) -> int | None:
        pid = getattr(self.part, "pid", None)  # a property or a method, whichever a part has
        pid = pid() if callable(pid) else pid
        return pid if isinstance(pid, int) else None


class Supervisor:
    def __init__(self, data_dir: Path, parts: list[Supervised]) -> None:
        self._data_dir = data_dir
        self._parts = parts
        self._stopping = False

    def start_all(self) -> None:
        """Start every part in order; a part that cannot start stops the start-up."""
        for supervised in self._parts:
            self._set(supervised, STARTING)
        for supervised in self._parts:
            supervised.part.start()
            self._set(supervised, UP)

    def run(self) -> None:
        """Supervise until SIGTERM or SIGINT, then stop every part in reverse order."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._ask_to_stop)
        try:
            while not self._stopping:
                self.tick()
                time.sleep(TICK_SECONDS)
        finally:
            self.stop_all()

    def _ask_to_stop(self, signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self._stopping = True

    def tick(self) -> None:
        now = time.monotonic()
        for supervised in self._parts:
            if self._stopping:
                return
            state = supervised.status.state
            if state == UP and not supervised.part.alive():
                self._died(supervised, now)
            elif state == DOWN and now >= supervised.next_start:
                self._restart(supervised)
            elif state == UP and supervised.failures and self._stable(supervised):
                supervised.failures = 0

    def _stable(self, supervised: Supervised) -> bool:
        return time.time() - supervised.status.since >= STABLE_SECONDS

    def _died(self, supervised: Supervised, now: float) -> None:
        how = getattr(supervised.part, "last_exit", None) or "exited"
        supervised.part.stop()  # reaps whatever is left of it
        supervised.failures += 1
        delay = backoff(supervised.failures)
        supervised.next_start = now + delay
        supervised.status.last_exit = how
        log.error("%s %s; restarting in %.1f s", supervised.name, how, delay)
        self._set(supervised, DOWN)

    def _restart(self, supervised: Supervised) -> None:
        try:
            supervised.part.start()
        except Exception as err:
            supervised.failures += 1
            delay = backoff(supervised.failures)
            supervised.next_start = time.monotonic() + delay
            log.error("%s did not start (%s); trying again in %.1f s", supervised.name, err, delay)
            return
        supervised.status.restarts += 1
        log.warning("%s is back (restart %d)", supervised.name, supervised.status.restarts)
        self._set(supervised, UP)

    def stop_all(self) -> None:
        for supervised in reversed(self._parts):
            try:
                supervised.part.stop()
            except Exception:
                log.exception("stopping %s failed", supervised.name)
            self._set(supervised, STOPPED)

    def _set(self, supervised: Supervised, state: str) -> None:
        supervised.status.state = state
        supervised.status.since = time.time()
        supervised.status.pid = supervised.pid if state == UP else None
        states = {s.name: s.status for s in self._parts}
        try:
            write_status(self._data_dir, os.getpid(), states)
        except OSError as err:  # a full disk must not stop the supervision itself
            log.warning("could not record the parts' states: %s", err)
