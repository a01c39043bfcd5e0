"""Run a child process with a hard time limit that takes its whole process tree down.

Installers and DAG parsers start children of their own (build backends, Airflow's per-file
parsing). The child runs in a new session, so on timeout one signal to its process group reaches
all of them; nothing is left holding the output pipe or writing into a venv being thrown away.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

GRACE_SECONDS = 5.0


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
) -> ProcessResult:
    """Run `command`; output is also copied line by line to `log` as it arrives."""
    start = time.monotonic()
    process = subprocess.Popen(
        [os.fspath(part) for part in command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    chunks: list[str] = []
    reader = threading.Thread(target=_pump, args=(process.stdout, chunks, log), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=max(timeout, 0.0))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
    finally:
        # Whatever the outcome, nothing the command started may outlive it.
        _signal_group(process.pid, signal.SIGKILL)
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


def _kill_group(process: subprocess.Popen) -> None:
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
