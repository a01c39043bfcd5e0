"""Wiring: what an API worker serves with, and what the background worker runs, from Settings.

The two live in different processes (see controlplane.server): API workers build nothing that
calls AWS, and the background worker builds nothing that serves HTTP.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.clientconfig import ENDPOINTS_FILE, read_endpoints
from controlplane.credentials import KeyPair, load_or_create_admin
from controlplane.execution_sessions import ExecutionRoleSessions
from controlplane.iam_config import DirectorySource
from controlplane.iam_gate import IamGatekeeper
from controlplane.security import Gatekeeper, TrustingGatekeeper
from controlplane.settings import Settings
from environments import store
from environments.airflow import sandbox
from environments.airflow.access import AirflowAccess
from environments.airflow.access.rest import RestApiForwarder
from environments.airflow.metadb.databases import MetadataDatabases
from environments.airflow.metadb.embedded import EmbeddedPostgres
from environments.airflow.runtime.manager import AirflowRuntime
from environments.aws.clients import AwsClients, AwsTarget
from environments.aws.roles import RoleReader
from environments.contents.dag_reports import DagReporter, refresh_dag_report
from environments.contents.sync_service import DagSyncService
from environments.host import HostServices
from environments.plumbing.files import create_once
from environments.provisioning.plan import default_steps
from environments.provisioning.reconciler import Reconciler
from environments.service import EnvironmentService, Requester
from environments.store import Store

log = logging.getLogger(__name__)


def replica_id(data_dir: Path) -> str:
    """A stable name for this replica, so a restart reclaims its own leases at once."""
    path = data_dir / "replica-id"
    if not path.exists():
        create_once(path, f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}\n".encode(), mode=0o600)
    return path.read_text().strip()


@dataclass
class ApiRuntime:
    """What an API worker serves with. It does nothing else: no reconciler, no DAG sync."""

    settings: Settings
    store: Store
    service: EnvironmentService
    gatekeeper: Gatekeeper
    health: Callable[[], tuple[bool, dict[str, Any]]]  # (healthy, body) of /_airdock/health
    directory: DirectorySource | None = None  # None: authentication is off

    def start(self) -> None:
        """In the worker process: drop any connection inherited through fork, and pick up an
        IAM config edited since the supervisor read it before following further edits."""
        self.store.engine.dispose(close=False)
        if self.directory is not None:
            self.directory.check()
            self.directory.start()

    def stop(self) -> None:
        if self.directory is not None:
            self.directory.stop()
        self.store.dispose()


def build_api(
    settings: Settings,
    db: Store,
    admin: KeyPair,
    directory: DirectorySource | None,
    on_change: Callable[[], None],
    health: Callable[[], tuple[bool, dict[str, Any]]],
    embedded_aws: str | None = None,
) -> ApiRuntime:
    """The API's wiring, built once in the supervisor and inherited by every API worker; it
    opens no connection and starts no thread until `start()`."""
    placement = settings.placement()
    service = EnvironmentService(db, placement, max_environments=settings.max_environments)
    service.set_change_listener(on_change)
    if settings.airflow_venvs:
        # Connections to each environment's Airflow open lazily, in each API worker.
        service.set_rest_api(RestApiForwarder(AirflowAccess(settings.data_dir)))
    admin_requester = Requester(
        arn=f"arn:aws:iam::{settings.account_id}:user/airdock-admin",
        iam_identity="user/airdock-admin",
    )
    gatekeeper: Gatekeeper = (
        IamGatekeeper(
            directory,
            placement,
            service.resource_tags,
            _execution_roles(settings, admin, directory, embedded_aws),
        )
        if directory is not None
        else TrustingGatekeeper(admin_requester)
    )
    return ApiRuntime(
        settings=settings,
        store=db,
        service=service,
        gatekeeper=gatekeeper,
        health=health,
        directory=directory,
    )


def _execution_roles(
    settings: Settings, admin: KeyPair, directory: DirectorySource, embedded_aws: str | None
) -> ExecutionRoleSessions | None:
    """With the embedded AWS, its roles' sessions (the environments' execution roles, as their
    tasks use them) may call the MWAA API; their policies are read from its IAM on demand."""
    if embedded_aws is None or directory.keys is None:
        return None
    target = AwsTarget(
        region=settings.region,
        endpoint_url=embedded_aws,
        access_key_id=admin.access_key_id,
        secret_access_key=admin.secret_access_key,
    )
    roles = RoleReader(AwsClients(target))  # boto3 starts on first use, in the API worker
    return ExecutionRoleSessions(directory.keys, roles, settings.account_id)


@dataclass
class BackgroundRuntime:
    """The background worker's parts: the reconciler, DAG sync, DAG reports and the Airflow
    runtime (every environment's processes)."""

    db: Store
    reconciler: Reconciler
    dag_sync: DagSyncService
    dag_reports: DagReporter
    settings: Settings
    airflow: AirflowRuntime | None = None  # None: --no-airflow

    def start(self) -> None:
        # One server per data dir and one background worker per server: leases held under
        # this replica's name belong to a predecessor that died, so take the work back now
        # rather than after the leases expire.
        with self.db.transaction() as session:
            freed = store.release_leases_of(session, self.reconciler.owner)
        if freed:
            log.info("resuming the work on %d environment(s) a previous run left", freed)
        if self.airflow is not None:
            # Before the reconciler: processes a killed predecessor left are stopped first,
            # then the environments that were running start again (one set each).
            self.airflow.start()
            threading.Thread(
                target=self.airflow.resume,
                args=(self.db,),
                kwargs={"region": self.settings.region, "account_id": self.settings.account_id},
                name="airflow-resume",
                daemon=True,
            ).start()
        self.reconciler.start()
        self.dag_reports.start()
        self.dag_sync.start()

    def stop(self) -> None:
        if self.airflow is not None:
            # First: a runtime step waiting for health then gives up at once (to be resumed
            # by the next start), so the reconciler below stops without waiting for it.
            self.airflow.stop()
        self.dag_sync.stop()
        self.dag_reports.stop()
        self.reconciler.stop()
        self.db.dispose()


def build_background(
    settings: Settings, admin: KeyPair, aws_endpoint: str | None, mwaa_endpoint: str | None = None
) -> BackgroundRuntime:
    embedded = settings.aws_endpoint is None and not settings.real_aws
    db = Store(settings.db_url)
    placement = settings.placement()
    target = AwsTarget(
        region=settings.region,
        endpoint_url=aws_endpoint,
        access_key_id=admin.access_key_id if embedded else None,
        secret_access_key=admin.secret_access_key if embedded else None,
    )
    aws = AwsClients(target)
    databases = metadata_databases(settings)
    airflow = (
        AirflowRuntime(
            settings.data_dir,
            aws,
            databases,
            on_health=lambda name, healthy, reason: _follow_health(db, name, healthy, reason),
            mwaa_endpoint=mwaa_endpoint,
            zygote=settings.airflow_zygote,
        )
        if databases is not None
        else None
    )
    services = HostServices(
        aws=aws,
        airflow_runtime=airflow,
        data_dir=settings.data_dir,
        dag_events=settings.dag_events,
        airflow_venvs=settings.airflow_venvs,
        uv_cache_dir=settings.uv_cache_dir,
        metadata_databases=databases,
        dags_changed=lambda name: reporter.request(name),
    )
    reporter = DagReporter(services, lambda name: _spec_of(db, name))
    reconciler = Reconciler(
        db,
        placement,
        default_steps(),
        owner=replica_id(settings.data_dir),
        workers=settings.reconciler_workers,
        poll_interval=settings.poll_interval,
        services=services,
        drift_interval=settings.drift_check_interval,
    )
    sync = DagSyncService(
        db, services, interval=settings.dag_sync_interval, on_change=reporter.request
    )
    return BackgroundRuntime(db, reconciler, sync, reporter, settings, airflow)


def _follow_health(db: Store, name: str, healthy: bool, reason: str) -> None:
    with db.transaction() as session:
        moved = store.follow_health(session, name, healthy, time.time())
    if moved:
        log.warning("environment %s is %s%s", name, moved, "" if healthy else f": {reason}")


def _spec_of(db: Store, name: str) -> dict | None:
    row = db.read_environment(name)
    return row.spec if row is not None else None


def prepare_store(settings: Settings) -> Store:
    """Create the schema once, before any worker starts, so workers never race to create it.

    The caller disposes of the store's connections before forking workers, so that no
    connection is shared across a fork."""
    db = Store(settings.db_url)
    db.create_schema()
    secure_sqlite(settings.db_url)
    return db


def secure_data_dir(data_dir: Path) -> None:
    """The data dir is Airdock's alone (0700). Environment accounts (Airdock as root) may only
    pass through it (0711) to their own workspaces, never list it; what it holds is private by
    its own mode (secrets 0600, folders 0700 or 0750)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o711 if sandbox.mode() == sandbox.ACCOUNTS else 0o700)


def secure_sqlite(url: str) -> None:
    """The SQLite store holds every environment's spec: owner-only (SQLite gives its -wal and
    -shm files the database file's mode)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if path.exists():
            path.chmod(0o600)


def metadata_databases(settings: Settings) -> MetadataDatabases | None:
    """Where environments' Airflow metadata goes: the server given, or the embedded one
    (started by the supervisor before the background worker); None without Airflow."""
    if not settings.airflow_venvs:
        return None
    if settings.airflow_database_url:
        return MetadataDatabases(settings.airflow_database_url, settings.data_dir)
    server = EmbeddedPostgres(settings.data_dir)
    return MetadataDatabases(server.url, settings.data_dir)


@dataclass
class LocalHandle:
    """The parts of a server's state that commands on the same host work with directly."""

    store: Store
    services: HostServices
    dag_sync: DagSyncService

    def close(self) -> None:
        self.store.dispose()


def open_local(data_dir: Path, database_url: str | None = None) -> LocalHandle:
    """Open a data dir the way `airdock serve` left it (its client files and admin key)."""
    try:
        endpoints = read_endpoints(data_dir)
    except FileNotFoundError:
        raise SystemExit(
            f"{data_dir} holds no {ENDPOINTS_FILE}: has `airdock serve` run there?"
        ) from None
    admin = load_or_create_admin(data_dir)
    settings = Settings(data_dir=data_dir, database_url=database_url)
    db = Store(settings.db_url)
    embedded = endpoints.aws_embedded
    target = AwsTarget(
        region=endpoints.region,
        endpoint_url=endpoints.aws_endpoint,
        access_key_id=admin.access_key_id if embedded else None,
        secret_access_key=admin.secret_access_key if embedded else None,
    )
    services = HostServices(aws=AwsClients(target), data_dir=data_dir)
    # On demand, the check runs in the foreground: the command waits for the report.
    sync = DagSyncService(
        db,
        services,
        on_change=lambda name: refresh_dag_report(services, name, _spec_of(db, name) or {}),
    )
    return LocalHandle(db, services, sync)
