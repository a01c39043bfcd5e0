"""A PostgreSQL server that `airdock serve` runs itself, from the binaries of the `pgserver` wheel.

Layout under the data dir:

    postgres/            root of it all (traversable, not listable, by the server's account)
    postgres/data/       PGDATA, private to the account that runs the server
    postgres/server.log  the server's own log
    postgres/superuser   the superuser's password (0600, readable by Airdock only)
    postgres/port        the TCP port chosen the first time, reused on every start

Only pgserver's binaries are used, not its Python side: that side opens every parent folder to
everyone, while here the data dir stays private. The server listens on 127.0.0.1 only, with
password authentication (SCRAM); it has no Unix socket, so the path length of the data dir does
not matter and sandboxed processes reach it like any client.

Root: PostgreSQL refuses to run as root, so the server then runs as the system account
`airdock-postgres`, which owns PGDATA and nothing else.

Supervision: it is a part of `airdock serve`'s supervisor (start, alive, stop), which restarts
it with backoff when it dies. If the postmaster was SIGKILLed, `start` first kills the backends
it left (they hold its shared memory) and removes the stale `postmaster.pid`. A server left
running by an earlier `airdock serve` that was itself killed is adopted, not started twice.
The port chosen the first time is kept, so the URLs handed out stay valid across restarts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg

from environments.plumbing import os_users
from environments.plumbing import processes as procs
from environments.plumbing.files import atomic_write, create_once

log = logging.getLogger(__name__)

SERVER_ACCOUNT = "airdock-postgres"
SUPERUSER = "postgres"
START_TIMEOUT = 60.0
STOP_GRACE = 10.0


class EmbeddedPostgresError(RuntimeError):
    """The server could not be initialised or started; the message quotes its log."""


def binaries() -> Path:
    """The folder of the PostgreSQL binaries shipped in the pgserver wheel."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the pgserver package (PostgreSQL binaries) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.root = Path(data_dir).absolute() / "postgres"
        self.pgdata = self.root / "data"
        self.log_path = self.root / "server.log"
        self.host = host
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        self._port: int | None = None
        self._lock = threading.RLock()

    # --- what clients need --------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = self._stored_port()
        return self._port

    @property
    def password(self) -> str:
        return (self.root / "superuser").read_text().strip()

    def url(self, database: str = "postgres") -> str:
        """The superuser's libpq URL (for psycopg; SQLAlchemy wants postgresql+psycopg://)."""
        return f"postgresql://{SUPERUSER}:{self.password}@{self.host}:{self.port}/{database}"

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Initialise PGDATA if needed and start (or adopt) the server; returns once it
        accepts connections."""
        with self._lock:
            self._prepare()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            if self.alive():
                return
            running = self._running_pid()
            if running is not None:
                log.info("adopting the embedded PostgreSQL left running (pid %s)", running)
                self._adopted_pid = running
                self._port = self._pidfile_port() or self.port
            else:
                self._launch()
            self._wait_ready()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: active transactions are rolled back), then SIGKILL of the
        whole group for whatever is left after a grace period."""
        with self._lock:
            pid = self._pid()
            if pid is None or not self._pid_alive(pid):
                # Dead already (and reaped): its number may belong to another process now.
                # Backends it left behind are cleared by the next start.
                self._process, self._adopted_pid = None, None
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_GRACE
            while self._pid_alive(pid) and time.monotonic() < deadline:
                if self._process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._process.wait(timeout=0.1)
                else:
                    time.sleep(0.1)
            procs.signal_group(pid, signal.SIGKILL)
            if self._process is not None:
                self._process.wait()
            self._process, self._adopted_pid = None, None

    def stop_left_running(self) -> bool:
        """Stop the server an `airdock serve` that was killed left running (the one `start`
        would adopt), as `stop` does; False when there is none."""
        with self._lock:
            running = self._running_pid()
            if running is None:
                return False
            self._adopted_pid = running
            self.stop()
            return True

    def alive(self) -> bool:
        """The postmaster is running (cheap: no connection is made)."""
        pid = self._pid()
        return pid is not None and self._pid_alive(pid)

    def ready(self) -> bool:
        """The server accepts connections."""
        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (the supervisor reports it)."""
        return self._pid() if self.alive() else None

    # --- internals ----------------------------------------------------------------------

    def _account(self) -> os_users.Account | None:
        if not os_users.running_as_root():
            return None
        return os_users.ensure_account(SERVER_ACCOUNT, "Airdock embedded PostgreSQL")

    def _identity(self) -> dict:
        account = self._account()
        return {} if account is None else {"user": account.uid, "group": account.gid}

    def _prepare(self) -> None:
        # The root is only traversed by the server's account: it may not list it, and the
        # password file in it is Airdock's alone.
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        account = self._account()
        if account is not None:
            for folder in os_users.open_path_to(self.root):
                log.warning("made %s traversable (o+x) for the account %s", folder,
                            SERVER_ACCOUNT)  # fmt: skip
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            for path in (self.pgdata, *self.pgdata.rglob("*")):
                if path.lstat().st_uid != account.uid:
                    os.lchown(path, account.uid, account.gid)
        create_once(self.root / "superuser", secrets.token_urlsafe(24).encode())

    def _initdb(self) -> None:
        log.info("initialising the embedded PostgreSQL in %s", self.pgdata)
        # initdb reads the password from a file: a copy only the server's account can read,
        # removed right after.
        pwfile = self.root / ".initdb-password"
        atomic_write(pwfile, self.password.encode())
        ids = self._identity()
        if ids:
            os.chown(pwfile, ids["user"], ids["group"])
        try:
            result = procs.run(
                [binaries() / "initdb", "-D", self.pgdata, "-U", SUPERUSER, "-E", "UTF8",
                 "--locale=C", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                 f"--pwfile={pwfile}", "--no-instructions"],
                timeout=120, cwd=self.root, identity=ids, env=_pg_env(),
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if not result.ok:
            raise EmbeddedPostgresError(f"initdb failed: {result.output[-2000:]}")

    def _launch(self) -> None:
        self._remove_stale_pidfile()
        port = self.port
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(fd, "ab") as server_log:
            self._process = procs.spawn(
                [binaries() / "postgres", "-D", self.pgdata, "-h", self.host, "-p", str(port),
                 "-k", "", "-c", "max_connections=500", "-c", "shared_buffers=32MB",
                 "-c", "fsync=on", "-c", "logging_collector=off"],
                cwd=self.root, stdout=server_log, stderr=subprocess.STDOUT, env=_pg_env(),
                **self._identity(),
            )  # fmt: skip
        self._adopted_pid = None
        log.info("embedded PostgreSQL started on %s:%s (pid %s)", self.host, port,
                 self._process.pid)  # fmt: skip

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL exited during start-up: {self._log_tail()}"
                )
            if self.ready():
                return
            time.sleep(0.05)
        raise EmbeddedPostgresError(f"the embedded PostgreSQL did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def _pid(self) -> int | None:
        if self._process is not None:
            return self._process.pid
        return self._adopted_pid

    def _pid_alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        return self._is_our_postmaster(pid)

    def _is_our_postmaster(self, pid: int) -> bool:
        """`pid` is a live process whose working directory is our PGDATA (the postmaster
        and its backends change into it), not some other process that reused the number."""
        try:
            return Path(os.readlink(f"/proc/{pid}/cwd")) == self.pgdata.resolve() and (
                Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
            )
        except (OSError, IndexError):
            return False

    def _pidfile_lines(self) -> list[str]:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _running_pid(self) -> int | None:
        lines = self._pidfile_lines()
        if lines and lines[0].strip().isdigit() and self._is_our_postmaster(int(lines[0])):
            return int(lines[0])
        return None

    def _pidfile_port(self) -> int | None:
        lines = self._pidfile_lines()
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def _remove_stale_pidfile(self) -> None:
        # Backends of a killed postmaster may still hold its shared memory, which would stop
        # a new postmaster; they are recognised by their working directory, our PGDATA.
        leftovers = [pid for pid in _all_pids() if self._is_our_postmaster(pid)]
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while any(self._is_our_postmaster(pid) for pid in leftovers):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"processes {leftovers} of the old server linger")
            time.sleep(0.02)
        if self._pidfile_lines():
            log.info("removing the stale postmaster.pid in %s", self.pgdata)
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _stored_port(self) -> int:
        path = self.root / "port"
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            pass
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            port = probe.getsockname()[1]
        atomic_write(path, str(port).encode())
        return port


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _pg_env() -> dict[str, str]:
    # Nothing of ours (credentials, PG* settings) reaches the server.
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
