"""The embedded AWS: a moto server in a child process on a loopback port.

A child process keeps moto's memory and threads out of the control plane, and dies with its
parent (PR_SET_PDEATHSIG) so a killed `airdock serve` leaves nothing running. It runs in a
process group of its own: a Ctrl-C at the terminal reaches `airdock serve` alone, which then
stops the embedded AWS in order. Its state lives under `<data_dir>/aws-state` and survives
restarts (see environments.emulator.state). It comes back on the same port, both when the
server restarts and when `airdock serve` restarts it after it died (`alive()` tells), because
clients hold the endpoint and some saved values embed it: SQS queue URLs are built from the
host and port a request was sent to.

By default the child is spawned (`python -m environments.emulator.server`). `airdock serve`
forks it instead (`fork=True`), so that it shares the modules the supervisor has imported.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from environments.plumbing import processes
from environments.plumbing.files import atomic_write
from environments.plumbing.forking import ForkedCall, fork_call

_PORT_FILE = "aws.port"
SERVER_MODULE = "environments.emulator.server"
# Time to write the final snapshot after SIGTERM before it is killed outright.
STOP_GRACE_SECONDS = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _remembered_port(data_dir: Path, host: str) -> int | None:
    """The port of the previous run, if it is still free."""
    try:
        port = int((data_dir / _PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    with socket.socket() as sock:
        # The server binds with SO_REUSEADDR too, so lingering closed connections do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return None
    return port


class EmbeddedAws:
    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        lock_wait: float = 20.0,
        front: str | None = None,
        front_env: dict[str, str] | None = None,
        fork: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.lock_wait = lock_wait
        self.port = port or _remembered_port(data_dir, host) or free_port(host)
        # A WSGI middleware (MODULE:FACTORY) the child puts in front of moto, and the
        # environment variables it reads its configuration from.
        self.front = front
        self.front_env = dict(front_env or {})
        # Forked from the caller rather than spawned: it then shares the modules the caller
        # has imported (botocore, SQLAlchemy...) instead of importing its own copies. For a
        # caller that imported them already and stays up: `airdock serve`'s supervisor.
        self.fork = fork
        self._process: subprocess.Popen[bytes] | ForkedCall | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def last_exit(self) -> str | None:
        """How the child ended, once alive() has seen it end."""
        code = self._process.returncode if self._process is not None else None
        return None if code is None else processes.describe_exit(code)

    def alive(self) -> bool:
        """Whether the child still runs (a dead one is reaped here, so it is no zombie)."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 120.0) -> None:
        """Start the child and return once it answers; raises RuntimeError when it exits or
        stays silent. Again after a death, it comes back on the same port with its state.
        (Importing moto alone takes over 30 s on a 2-core machine busy with Airflows.)"""
        if self.alive():
            return
        log_path = self.data_dir / "aws.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        arguments = [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--state-dir",
            str(self.data_dir / "aws-state"),
            "--lock-wait",
            str(self.lock_wait),
            *(["--front", self.front] if self.front else []),
        ]
        settings = {"MOTO_ALLOW_NONEXISTENT_REGION": "true", **self.front_env}
        if self.fork:
            self._process = fork_call(
                functools.partial(_serve, arguments), output=log, env=settings, name="aws"
            )
        else:
            self._process = processes.spawn(
                [sys.executable, "-m", SERVER_MODULE, *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=processes.die_with_parent,
                # Two malloc arenas keep the threaded server's heap from fragmenting: it stays
                # about a third smaller after some use, at no measurable cost. (A forked child
                # has its parent's limit.)
                env={"MALLOC_ARENA_MAX": "2", **os.environ, **settings},
            )
        log.close()
        try:
            self._wait_ready(timeout)
        except RuntimeError:
            self.stop()
            raise
        atomic_write(self.data_dir / _PORT_FILE, str(self.port), mode=0o600)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"the embedded AWS exited early; see {self.data_dir / 'aws.log'}"
                )
            # Any HTTP answer means it serves: state is restored before it listens. An
            # unsigned GET / is refused by an authenticating front, which proves as much.
            try:
                with urllib.request.urlopen(f"{self.endpoint}/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the embedded AWS did not answer on {self.endpoint}")

    def stop(self) -> None:
        if self._process is None:
            return
        processes.kill_group(self._process, grace=STOP_GRACE_SECONDS)
        self._process = None


def _serve(arguments: list[str]) -> None:
    """The forked child's entry: what `python -m environments.emulator.server` runs."""
    # Imported here, in the child, and by name, so that import-linter holds the caller to
    # not loading moto: moto registers a botocore hook at import, which the caller's own
    # boto3 clients must not carry.
    importlib.import_module(SERVER_MODULE).main(arguments)
