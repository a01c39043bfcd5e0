"""A function run in a forked child that behaves, to its parent, like a spawned process.

A child forked without exec keeps sharing, copy-on-write, every module its parent had
imported; a spawned Python imports them all again into pages of its own. For a long-lived
child of a parent that has already imported most of what the child needs (botocore,
SQLAlchemy, cryptography...), forking is the difference between holding those modules once
and holding them twice.

The child is set up as `processes.spawn` sets up its children: a session of its own, death
with its parent (PR_SET_PDEATHSIG), stdin from /dev/null and its output to a given file (or
the parent's). The
handle answers `pid`, `returncode`, `poll()` and `wait(timeout)` as `subprocess.Popen` does,
so `processes.kill_group` stops it. Fork only from a thread-free moment, or from a parent
whose other threads hold no lock the child needs: as ever with fork.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import IO

from environments.plumbing import processes

_POLL_SECONDS = 0.02


class ForkedCall:
    """The parent's handle on a child running one function."""

    def __init__(self, pid: int, name: str) -> None:
        self.pid = pid
        self.args = name  # what Popen.args would be, for messages
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0  # reaped elsewhere: its status is lost
            if pid != 0:
                # Popen's convention: -N when killed by signal N.
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(_POLL_SECONDS)
        assert self.returncode is not None
        return self.returncode


def fork_call(
    main: Callable[[], int | None],
    *,
    output: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "forked call",
    death_signal: signal.Signals = signal.SIGTERM,
) -> ForkedCall:
    """Run `main()` in a forked child; its return value (or SystemExit) is the exit status.
    Its output goes to `output`, or where the parent's goes; `env` is added to the child's
    os.environ before `main` runs."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # or what the parent buffered would be written twice
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os._exit(_child(main, parent, output, env or {}, death_signal))
    return ForkedCall(pid, name)


def _child(
    main: Callable[[], int | None],
    parent: int,
    output: IO[bytes] | None,
    env: Mapping[str, str],
    death_signal: signal.Signals,
) -> int:
    code = 1
    try:
        os.setsid()
        processes.die_with_parent(death_signal)
        if os.getppid() != parent:
            return 0  # the parent died before the line above took effect
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)  # the parent's, whose pipe this child must not write to
        with open(os.devnull, "rb") as devnull:
            os.dup2(devnull.fileno(), 0)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        if output is not None:
            os.dup2(output.fileno(), 1)
            os.dup2(output.fileno(), 2)
            # Python's streams onto those descriptors, as in a spawned process (the parent's
            # may be objects of its own that write elsewhere).
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.update(env)
        code = int(main() or 0)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    return code
