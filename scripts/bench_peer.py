"""MiniStack, a peer MWAA emulator, as a column in scripts/bench_api.py.

MiniStack (PyPI package `ministack`) is installed with uv into a throwaway virtualenv, started
on a free loopback port and asked to speak MWAA. It checks neither signatures nor policies.
When it cannot be installed, does not start, or does not answer MWAA calls, `ministack()`
yields the reason instead, and the benchmark prints it and leaves the column out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from environments.plumbing import processes

PACKAGE = "ministack"
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 60.0
REGION = "us-east-1"
KEY = ("test", "test")  # MiniStack accepts any key


@dataclass
class Peer:
    name: str
    endpoint: str
    pid: int


def _uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def _install(venv: Path) -> str | None:
    """Install MiniStack into `venv`; None on success, else what went wrong."""
    uv = _uv()
    if uv is None:
        return "uv is not installed"
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), PACKAGE],
    ):
        result = processes.run(command, timeout=INSTALL_TIMEOUT)
        if result.returncode != 0:
            last = (result.output.strip().splitlines() or ["(no output)"])[-1]
            return f"`{' '.join(command[:3])} ...` failed: {last}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mwaa_client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "mwaa",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY[0],
        aws_secret_access_key=KEY[1],
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )


def _speaks_mwaa(endpoint: str, process: subprocess.Popen) -> str | None:
    """Wait until the peer answers ListEnvironments; None when it does, else why not."""
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited during start-up (code {process.returncode})"
        try:
            answer = mwaa_client(endpoint).list_environments()
        except Exception as err:  # not listening yet, or no MWAA: keep the last reason
            last = f"{type(err).__name__}: {err}"
            time.sleep(0.2)
            continue
        if isinstance(answer.get("Environments"), list):
            return None
        last = f"ListEnvironments answered {answer!r:.100}"
        time.sleep(0.2)
    return f"it does not answer MWAA's ListEnvironments ({last})"


@contextlib.contextmanager
def ministack() -> Iterator[Peer | str]:
    """A running MiniStack, or the reason there is none."""
    with tempfile.TemporaryDirectory(prefix="airdock-peer-") as tmp:
        venv = Path(tmp) / "venv"
        failure = _install(venv)
        if failure is not None:
            yield f"MiniStack could not be installed from PyPI: {failure}"
            return
        port = _free_port()
        log = open(Path(tmp) / "ministack.log", "wb")  # noqa: SIM115
        process = processes.spawn(
            [str(venv / "bin" / "ministack")],
            env={
                **os.environ,
                "GATEWAY_PORT": str(port),
                "BIND_HOST": "127.0.0.1",
                "TMPDIR": tmp,
                "LOG_LEVEL": "WARNING",
            },
            cwd=Path(tmp),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            endpoint = f"http://127.0.0.1:{port}"
            failure = _speaks_mwaa(endpoint, process)
            if failure is not None:
                yield f"MiniStack does not serve MWAA here: {failure}"
            else:
                yield Peer(PACKAGE, endpoint, process.pid)
        finally:
            processes.kill_group(process, grace=10)
            log.close()
