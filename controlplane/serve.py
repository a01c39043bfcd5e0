"""`airdock serve`: one command, a supervised tree of processes (see controlplane.server).

In order: take the data dir, read the admin key and the IAM config, prepare the store, bind the
socket, prepare the API's wiring and app, then start the embedded AWS, the background worker and
the API workers, write the client files and supervise until SIGTERM or SIGINT.

The supervisor imports and builds everything its forked children use before the first fork,
then freezes it out of the garbage collector's reach: the children share those pages instead
of each holding a copy (scripts/bench_memory.py measures it).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import os
import socket

from controlplane.app import create_app
from controlplane.aws_gateway.launch import FRONT, gateway_environment
from controlplane.clientconfig import PROFILE, Endpoints, write_client_files
from controlplane.credentials import load_or_create_admin
from controlplane.doors.certificates import LocalAuthority
from controlplane.hot_reads import HotReads
from controlplane.iam_config import open_directory
from controlplane.runtime import build_api, prepare_store, secure_data_dir
from controlplane.server import datadir, memory
from controlplane.server.api_worker import serve_api
from controlplane.server.background import run_background
from controlplane.server.parts import ForkedProcess, Supervised, Supervisor
from controlplane.server.status import HealthReport
from controlplane.server.wakeups import WakeupPipe
from controlplane.server.web_doors import run_web_doors
from controlplane.settings import Settings
from environments.airflow import sandbox
from environments.airflow.metadb.embedded import EmbeddedPostgres
from environments.emulator.supervisor import EmbeddedAws

log = logging.getLogger("airdock")

EMBEDDED_AWS = "embedded_aws"
METADATA_DATABASE = "metadata_database"
BACKGROUND = "background"
WEB_DOORS = "web_doors"
BACKGROUND_GRACE = 30.0


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux; without it a keep-alive client waits out
    # the peer's delayed ACK (~40 ms) between the response's header and body writes.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _loopback_url(sock: socket.socket) -> str:
    """The API's address for the environments' tasks on this host (a wildcard bind included)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: Settings) -> None:
    """Raises datadir.DataDirInUse, before writing anything, when another server has the dir."""
    lock = datadir.claim(settings.data_dir)
    try:
        _serve(settings)
    finally:
        lock.release()


def _serve(settings: Settings) -> None:
    memory.limit_malloc_arenas()
    # Whatever the server writes is its own, or its group's: never readable by other accounts
    # (the environments' ones among them). Files meant for them get their modes explicitly.
    os.umask(0o027)
    secure_data_dir(settings.data_dir)
    admin = load_or_create_admin(settings.data_dir)
    db = prepare_store(settings)
    # Read the IAM config before anything starts, so a broken file stops start-up cleanly.
    directory = (
        open_directory(settings.data_dir, settings.iam_config, settings.account_id, admin, db)
        if settings.auth_enabled
        else None
    )
    sock = _bind(settings.host, settings.port)
    # The environments' HTTPS addresses are loopback ones whatever --host says: the port is
    # taken on 127.0.0.1 now, so that hostnames name the real port even when 0 was asked for.
    web_sock = _bind("127.0.0.1", settings.web_port)
    settings = dataclasses.replace(settings, web_port=web_sock.getsockname()[1])
    ca_bundle = LocalAuthority(settings.data_dir).ensure()
    embedded = None
    aws_endpoint = settings.aws_endpoint
    if aws_endpoint is None and not settings.real_aws:
        # Every request to it is authenticated and authorized against the same identities
        # and policies as the MWAA API (controlplane.aws_gateway).
        embedded = EmbeddedAws(
            settings.data_dir,
            host="127.0.0.1",
            # Forked like the other parts, so it shares the modules imported here.
            fork=True,
            front=FRONT,
            front_env=gateway_environment(
                data_dir=settings.data_dir,
                iam_config=settings.iam_config,
                database_url=settings.db_url,
                account_id=settings.account_id,
                region=settings.region,
            ),
        )
        aws_endpoint = embedded.endpoint

    wakeups = WakeupPipe()
    health = HealthReport(settings.data_dir)
    api = build_api(
        settings,
        db,
        admin,
        directory,
        wakeups.wake,
        health.current,
        embedded_aws=aws_endpoint if embedded is not None else None,
    )
    # GetEnvironment, which clients poll, skips FastAPI's routing (controlplane.hot_reads).
    app = HotReads(create_app(api))
    parts = [Supervised(EMBEDDED_AWS, embedded)] if embedded is not None else []
    if settings.airflow_venvs:
        for name in sandbox.remove_orphans():
            log.info("removed the account %s: its workspace is gone", name)
        if settings.airflow_database_url is None:
            parts.append(Supervised(METADATA_DATABASE, EmbeddedPostgres(settings.data_dir)))
    background = functools.partial(
        run_background, settings, admin, aws_endpoint, wakeups, _loopback_url(sock)
    )
    # The background worker stops every environment's Airflow before it exits: more grace.
    parts.append(Supervised(BACKGROUND, ForkedProcess(background, grace=BACKGROUND_GRACE)))
    doors = functools.partial(run_web_doors, settings, web_sock)
    parts.append(Supervised(WEB_DOORS, ForkedProcess(doors)))
    for number in range(1, settings.api_processes + 1):
        worker = functools.partial(serve_api, app, sock, str(number), settings.request_timeout)
        parts.append(Supervised(f"api-{number}", ForkedProcess(worker)))
    supervisor = Supervisor(settings.data_dir, parts)

    memory.warm_up_shared()
    # Building the service read the store: no connection may cross the fork into the workers.
    db.dispose()
    gc.collect()
    gc.freeze()
    try:
        supervisor.start_all()
    except BaseException:
        supervisor.stop_all()
        raise
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    mwaa_endpoint = f"http://{shown_host}:{port}"
    endpoints = Endpoints(
        mwaa_endpoint=mwaa_endpoint,
        aws_endpoint=aws_endpoint,
        aws_embedded=embedded is not None,
        region=settings.region,
        account_id=settings.account_id,
        ca_bundle=str(ca_bundle.absolute()),
    )
    write_client_files(settings.data_dir, endpoints, admin)
    _announce(settings, mwaa_endpoint, aws_endpoint)
    supervisor.run()


def _announce(settings: Settings, mwaa_endpoint: str, aws_endpoint: str | None) -> None:
    aws_dir = settings.data_dir / "aws"
    print(f"Airdock MWAA endpoint: {mwaa_endpoint}", flush=True)
    print(f"AWS endpoint:          {aws_endpoint or 'real AWS (default credential chain)'}")
    print(f"Store:                 {settings.db_url.split('@')[-1]}")
    print(f"Web servers:           https://127.x.y.z:{settings.web_port} (one address each)")
    print(f"Processes:             {settings.api_processes} API worker(s), 1 background worker")
    if settings.airflow_venvs:
        metadata = settings.airflow_database_url or "embedded PostgreSQL in the data dir"
        print(f"Airflow metadata:      {metadata.split('@')[-1]}")
        print(f"User code:             {sandbox.describe()}")
        if sandbox.mode() == sandbox.NONE:
            log.warning(sandbox.describe())
    print("Use it from another shell:")
    print(f"  export AWS_CONFIG_FILE={aws_dir / 'config'}")
    print(f"  export AWS_SHARED_CREDENTIALS_FILE={aws_dir / 'credentials'}")
    print(f"  export AWS_PROFILE={PROFILE}")
    print("  aws mwaa list-environments", flush=True)
