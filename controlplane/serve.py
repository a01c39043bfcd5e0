"""`airdock serve`: bind, write the client files, run the API and the reconciler."""

from __future__ import annotations

import logging
import os
import signal
import socket

import uvicorn

from controlplane.app import create_app
from controlplane.clientconfig import PROFILE, Endpoints, write_client_files
from controlplane.runtime import build_runtime
from controlplane.settings import Settings
from environments.airflow import sandbox

log = logging.getLogger("airdock")


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux; without it a keep-alive client waits out
    # the peer's delayed ACK (~40 ms) between the response's header and body writes.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(settings: Settings) -> None:
    # uvicorn re-raises the SIGTERM it handled once it has shut down; as SystemExit it
    # passes through the `finally` below, so the processes we started are stopped too.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # Whatever the server writes is its own, or its group's: never readable by other accounts
    # (the environments' ones among them). Files meant for them get their modes explicitly.
    os.umask(0o027)
    runtime = build_runtime(settings)
    try:
        sock = _bind(settings.host, settings.port)
        host, port = sock.getsockname()[:2]
        shown_host = f"[{host}]" if ":" in host else host
        mwaa_endpoint = f"http://{shown_host}:{port}"
        endpoints = Endpoints(
            mwaa_endpoint=mwaa_endpoint,
            aws_endpoint=runtime.aws_endpoint,
            aws_embedded=runtime.embedded_aws is not None,
            region=settings.region,
            account_id=settings.account_id,
        )
        write_client_files(settings.data_dir, endpoints, runtime.admin)
        _announce(settings, mwaa_endpoint, runtime.aws_endpoint)
        config = uvicorn.Config(
            create_app(runtime),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        runtime.close()


def _announce(settings: Settings, mwaa_endpoint: str, aws_endpoint: str | None) -> None:
    aws_dir = settings.data_dir / "aws"
    print(f"Airdock MWAA endpoint: {mwaa_endpoint}", flush=True)
    print(f"AWS endpoint:          {aws_endpoint or 'real AWS (default credential chain)'}")
    print(f"Store:                 {settings.db_url.split('@')[-1]}")
    if settings.airflow_venvs:
        print(f"User code:             {sandbox.describe()}")
        if sandbox.mode() == sandbox.NONE:
            log.warning(sandbox.describe())
    print("Use it from another shell:")
    print(f"  export AWS_CONFIG_FILE={aws_dir / 'config'}")
    print(f"  export AWS_SHARED_CREDENTIALS_FILE={aws_dir / 'credentials'}")
    print(f"  export AWS_PROFILE={PROFILE}")
    print("  aws mwaa list-environments", flush=True)
