"""Imports Airflow once for a whole set of an environment's processes, then forks each of them.

Every Airflow process of an environment (two schedulers, the DAG processor, the triggerer, the
API server, each Celery worker) used to start its own interpreter and import Airflow into it:
over a hundred MB of modules apiece, the same in all of them. This process imports Airflow
once and forks each component from there, so they share those pages for as long as neither
side writes to them (the `sitecustomize` next to this file freezes the garbage collector's view
of them before the first fork).

It runs in the environment's own Python, confined like any of its processes, and imports
nothing of Airdock's. The control plane talks to it over a SOCK_SEQPACKET socket (its file
descriptor is the first argument), one JSON message at a time:

- `{"argv": [...], "env": {...}, "cwd": "..."}`, with the component's log file attached
  (SCM_RIGHTS): fork a component, which runs the Python script argv[0] (the venv's `airflow`
  command) as its `__main__`, as the interpreter would have. The answer is `{"pid": N}`, or
  `{"error": "..."}`.
- `{"exited": N, "status": S}` (sent by this process): component N has exited, with the exit
  status subprocess.Popen would give (negative for a signal).

The first message, `{"ready": pid}`, says the imports are done. Each component is the leader of
a session and process group of its own, as a spawned one would be, and dies with this process
(PR_SET_PDEATHSIG), so none outlives the one that reports its exit. When the socket closes,
or on SIGTERM, this process takes no more requests and exits once its components have: a
shutdown that signals everything at once (the control plane's clean-up after a crash) lets a
Celery worker's warm shutdown take its time.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import traceback

MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1
# What every component imports: shared by all of them once imported here. A module this
# Airflow version lacks is skipped.
PRELOAD = (
    "airflow",
    "airflow.cli.cli_parser",
    "airflow.models",
)
RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1)


def preload(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()


def send(sock: socket.socket, message: dict) -> None:
    # OSError: the control plane is gone, and its successor stops the components.
    with contextlib.suppress(OSError):
        sock.send(json.dumps(message).encode())


def serve(sock: socket.socket) -> None:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    terminating: list[bool] = []
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the select below
    signal.signal(signal.SIGTERM, lambda *_: terminating.append(True))
    children: set[int] = set()
    channel_open = True
    send(sock, {"ready": os.getpid()})
    while children or (channel_open and not terminating):
        readable, _, _ = select.select([sock, wake_read] if channel_open else [wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
        if sock in readable:
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
            if not message:
                channel_open = False
            elif terminating:
                for fd in fds:
                    os.close(fd)
                send(sock, {"error": "the zygote is stopping"})
            else:
                pid = fork_component(json.loads(message), fds, sock, (wake_read, wake_write))
                if pid:
                    children.add(pid)
                send(sock, {"pid": pid} if pid else {"error": "fork failed"})
        for pid, status in reap(children):
            children.discard(pid)
            if channel_open:
                send(sock, {"exited": pid, "status": status})


def reap(children: set[int]) -> list[tuple[int, int]]:
    done = []
    for pid in list(children):
        try:
            reaped, wait_status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done.append((pid, -signal.SIGKILL))
            continue
        if reaped:
            done.append((pid, os.waitstatus_to_exitcode(wait_status)))
    return done


def fork_component(
    request: dict, fds: list[int], sock: socket.socket, pipe: tuple[int, int]
) -> int:
    """Fork a component; its pid, or 0 when the fork failed. Only the zygote returns."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    settled, settled_signal = os.pipe()  # closed by the child once it leads its own session
    try:
        pid = os.fork()
    except OSError:
        traceback.print_exc()
        pid = -1
    if pid:
        os.close(settled_signal)
        os.read(settled, 1)  # b"" once the child has closed its end (or died)
        os.close(settled)
        for fd in fds:
            os.close(fd)
        return max(pid, 0)
    # The component, from here on: it never returns into the loop above.
    code = 1
    try:
        sock.close()
        for fd in (*pipe, settled):
            os.close(fd)
        become_component(request, fds[0] if fds else None, parent)
        os.close(settled_signal)
        runpy.run_path(request["argv"][0], run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        # sys.exit would unwind into the zygote's loop; run what an interpreter runs at exit.
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def become_component(request: dict, log_fd: int | None, parent: int) -> None:
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the zygote died before the line above
        os._exit(1)
    signal.set_wakeup_fd(-1)
    for number in RESET_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if log_fd is not None:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    os.chdir(request["cwd"])
    # Before the environment changes: setproctitle finds the space it writes the title into
    # from where the process's environment strings still lie.
    name_process([sys.executable, *request["argv"]])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    # Pooled connections (none are made by importing Airflow) must not cross the fork.
    settings = sys.modules.get("airflow.settings")
    engine = getattr(settings, "engine", None)
    if engine is not None:
        engine.dispose(close=False)
    # The component's own first fork (a worker's pool, the triggerer's runner) freezes again.
    fork_sharing = sys.modules.get("sitecustomize")
    if hasattr(fork_sharing, "forked_anew"):
        fork_sharing.forked_anew()


def name_process(argv: list[str]) -> None:
    """Show the command line the component would have had by itself (in ps, and to anything
    that reads /proc), not the zygote's: Airflow depends on setproctitle."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(" ".join(argv))


def main() -> None:
    fd = int(sys.argv[1])
    modules = tuple(n for n in sys.argv[2].split(",") if n) if len(sys.argv) > 2 else PRELOAD
    sock = socket.socket(fileno=fd)
    preload(modules)
    gc.collect()
    serve(sock)


if __name__ == "__main__":
    main()
