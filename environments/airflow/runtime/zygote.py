"""The control plane's side of an environment's zygote (zygote_child): it starts the zygote,
asks it for components, and holds each one as the supervisor holds a spawned process.

A zygote serves one set of processes (runtime.supervisor): same venv, same configuration.
It imported Airflow with the environment of the first component it was started for, so it
forks only components whose environment is the same but for the variables that name the
component; any other is spawned as before. Under bubblewrap each process has a PID namespace
of its own, and the pids a zygote inside one would report mean nothing outside it, so there
components are spawned too (`usable`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from environments.airflow import sandbox
from environments.airflow.runtime import zygote_child
from environments.plumbing import processes as procs

SCRIPT = "airdock_zygote.py"
SOURCE = Path(zygote_child.__file__)
# Variables that differ from component to component without changing what Airflow imports.
PER_COMPONENT = frozenset({"MWAA_AIRFLOW_COMPONENT", "MWAA_COMMAND"})
READY_TIMEOUT = 120.0  # importing Airflow, on a busy machine
REPLY_TIMEOUT = 30.0
STOP_GRACE = 5.0
GONE = -9  # the status of a component whose zygote died (PR_SET_PDEATHSIG killed it)
SHELL_EXEC = b"'''exec' "  # the second line of such a script (pip's and uv's trampoline)


def usable(launch: Any) -> bool:
    """Whether a process launched as `launch` says may be forked by a zygote: not in a
    bubblewrap sandbox, and its program a Python script (the zygote runs it in its own
    interpreter)."""
    if launch.mode == sandbox.BUBBLEWRAP:
        return False
    try:
        with open(launch.argv[0], "rb") as program:
            first, second = program.readline(), program.readline()
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    # An interpreter path too long for a #! line is written as a shell line that runs Python
    # on the script; to Python that line is a string, and the rest is the script's code.
    return b"python" in first or (first.strip() == b"#!/bin/sh" and second.startswith(SHELL_EXEC))


class ForkedComponent:
    """A component the zygote forked, with what the supervisor uses of subprocess.Popen: its
    pid (also its process group), `poll`, `wait` and `returncode`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._done = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def exited(self, status: int) -> None:
        if self.returncode is None:
            self.returncode = status
            self._done.set()


class ZygoteFailed(OSError):
    pass


class Zygote:
    def __init__(self, launch: Any, fd: int, channel: socket.socket, log_file: IO[bytes]) -> None:
        """Use `start`."""
        self.env = dict(launch.env)
        self._channel = channel
        self._lock = threading.Lock()
        self._replies: queue.Queue[dict | None] = queue.Queue()
        self._children: dict[int, ForkedComponent] = {}
        self._ready = threading.Event()
        self._closed = threading.Event()
        self.process = procs.spawn(
            launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(fd,),
            **launch.identity(),
        )
        threading.Thread(target=self._read, name="zygote-reader", daemon=True).start()

    @classmethod
    def start(
        cls,
        launcher: Any,
        python: Path,
        script: Path,
        log_path: Path,
        *,
        preload: tuple[str, ...] = zygote_child.PRELOAD,
    ) -> Zygote:
        """Start the zygote `script` with `python` as `launcher(argv)` would start a process
        (it returns the Launch for that argv), and wait until it has imported `preload`."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [str(python), str(script), str(theirs.fileno()), ",".join(preload)]
            launch = launcher(argv)
            with open(log_path, "ab") as log_file:
                zygote = cls(launch, theirs.fileno(), ours, log_file)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while not zygote._ready.wait(0.5):
            if not zygote.alive() or time.monotonic() > deadline:
                break
        if not zygote._ready.is_set() or not zygote.alive():
            zygote.stop()
            raise ZygoteFailed(f"the zygote did not start (see {log_path})")
        return zygote

    def alive(self) -> bool:
        if self.process.poll() is not None:
            self._gone()
        return not self._closed.is_set()

    def accepts(self, env: dict[str, str]) -> bool:
        keys = (self.env.keys() | env.keys()) - PER_COMPONENT
        return all(self.env.get(key) == env.get(key) for key in keys)

    def fork(
        self, argv: list[str], env: dict[str, str], cwd: Path, log_file: IO[bytes]
    ) -> ForkedComponent:
        """A component running `argv` (argv[0], a Python script such as the venv's `airflow`,
        runs as its `__main__`), its output to `log_file`."""
        request = json.dumps({"argv": argv, "env": env, "cwd": str(cwd)}).encode()
        with self._lock:
            if not self.alive():
                raise ZygoteFailed("the zygote has exited")
            socket.send_fds(self._channel, [request], [log_file.fileno()])
            try:
                reply = self._replies.get(timeout=REPLY_TIMEOUT)
            except queue.Empty:
                # A late answer would be taken for the next request's, and a process it forked
                # meanwhile would be nobody's: such a zygote goes, and its components with it.
                procs.signal_group(self.process.pid, procs.signal.SIGKILL)
                raise ZygoteFailed("the zygote did not answer") from None
        if reply is None or "child" not in reply:
            raise ZygoteFailed((reply or {}).get("error", "the zygote has exited"))
        return reply["child"]

    def stop(self) -> None:
        """Close the channel (the zygote exits once its components have) and make sure it has
        exited; call it after the components were stopped."""
        with contextlib.suppress(OSError):
            self._channel.shutdown(socket.SHUT_RDWR)
        try:
            self.process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            procs.signal_group(self.process.pid, procs.signal.SIGKILL)
            self.process.wait()
        self._gone()
        self._channel.close()

    def _read(self) -> None:
        while True:
            try:
                raw = self._channel.recv(zygote_child.MAX_MESSAGE)
            except OSError:
                raw = b""
            if not raw:
                break
            try:
                self._take(json.loads(raw))
            except (ValueError, TypeError, KeyError, AttributeError):
                # Not what a zygote says: it is not trusted with its components any longer.
                procs.signal_group(self.process.pid, procs.signal.SIGKILL)
                break
        self._gone()

    def _take(self, message: dict) -> None:
        if "ready" in message:
            self._ready.set()
        elif "exited" in message:
            child = self._children.pop(int(message["exited"]), None)
            if child is not None:
                child.exited(int(message["status"]))
        elif message.get("pid"):
            self._replies.put(self._adopt(int(message["pid"])))
        else:
            self._replies.put({"error": str(message.get("error", "no answer"))})

    def _adopt(self, pid: int) -> dict:
        """The reply for a component the zygote says it forked, once it is one: a child of
        the zygote that leads its own process group. The zygote runs as the environment, as
        does the user code in it, and the control plane signals the groups it is given: a
        pid named by anything else must never become one of them."""
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            leader = os.getpgid(pid) == pid
        except (OSError, ValueError, IndexError):
            ppid, leader = 0, False
        if ppid != self.process.pid or not leader:
            return {"error": f"the zygote named {pid}, which is not a component it forked"}
        child = ForkedComponent(pid)
        self._children[pid] = child
        return {"child": child}

    def _gone(self) -> None:
        """The zygote has exited, and its components with it (they die with their parent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._replies.put(None)
        for child in list(self._children.values()):
            child.exited(GONE)
        self._children.clear()
