"""Child processes in a process group of their own, and one way to stop such a group.

Installers and DAG parsers start children of their own (build backends, Airflow's per-file
parsing). A child spawned here runs in a new session, so one signal to its process group reaches
all of them; nothing is left holding the output pipe or writing into a venv being thrown away.
`run` adds a hard time limit that takes the whole tree down.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

GRACE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessResult:
    returncode: int | None  # None when it was killed for running out of time
    output: str  # stdout and stderr, interleaved as written
    timed_out: bool
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: IO[str] | None = None,
    identity: Mapping[str, Any] | None = None,
    stdin: Any = subprocess.DEVNULL,
    dies_with_caller: bool = False,
) -> ProcessResult:
    """Run `command`; output is also copied line by line to `log` as it arrives. `identity`
    holds `spawn`'s user, group, extra_groups and umask arguments, when they are needed;
    `stdin` is as for `spawn` (a file to read, say). With `dies_with_caller`, the command is
    SIGKILLed if the calling thread's process dies first (its output would be nobody's)."""
    start = time.monotonic()
    process = spawn(
        command,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=functools.partial(die_with_parent, signal.SIGKILL) if dies_with_caller else None,
        **(identity or {}),
    )
    chunks: list[str] = []
    reader = threading.Thread(target=_pump, args=(process.stdout, chunks, log), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=max(timeout, 0.0))
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(process)
    finally:
        # Whatever the outcome, nothing the command started may outlive it.
        signal_group(process.pid, signal.SIGKILL)
    reader.join(GRACE_SECONDS)
    return ProcessResult(
        returncode=None if timed_out else process.returncode,
        output="".join(chunks),
        timed_out=timed_out,
        duration=time.monotonic() - start,
    )


def _pump(stream: IO[bytes] | None, chunks: list[str], log: IO[str] | None) -> None:
    if stream is None:
        return
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            chunks.append(line)
            if log is not None:
                log.write(line)
                log.flush()


def spawn(
    command: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = None,
    stderr: Any = None,
    preexec_fn: Callable[[], object] | None = None,
    user: int | None = None,
    group: int | None = None,
    extra_groups: Sequence[int] | None = None,
    umask: int = -1,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new session and process group (its pid is the
    group's id), with no input unless `stdin` says otherwise. `user`, `group` and
    `extra_groups` (ids) switch identity in the child before it runs `command`; giving `user`
    without `extra_groups` drops every supplementary group of the caller. `pass_fds` stay open
    in the child, under the same numbers."""
    if user is not None and extra_groups is None:
        extra_groups = ()
    return subprocess.Popen(
        [os.fspath(part) for part in command],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=preexec_fn,
        user=user,
        group=group,
        extra_groups=list(extra_groups) if extra_groups is not None else None,
        umask=umask,
        pass_fds=tuple(pass_fds),
    )


def kill_group(process: subprocess.Popen[Any], grace: float = GRACE_SECONDS) -> None:
    """Stop a process spawned by `spawn` and its group: SIGTERM, and SIGKILL for whatever has
    not exited after `grace` seconds. Returns once the leader is reaped."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to a process group; a group that is already gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_pid(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to one process only; a process that is already gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def describe_exit(returncode: int) -> str:
    """A Popen-style return code in words: -N is death by signal N."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to the calling process when its parent dies
    (PR_SET_PDEATHSIG), so a killed supervisor leaves no child running. Linux only; elsewhere
    a no-op. Call it in the child: as a Popen preexec_fn, or right after os.fork()."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def is_running(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts: it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children (pid -> child pids), from /proc."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            found.setdefault(ppid, []).append(int(entry.name))
    return found
