"""Wiring: builds the store, service, reconciler and gatekeeper from Settings."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.clientconfig import ENDPOINTS_FILE, read_endpoints
from controlplane.credentials import KeyPair, load_or_create_admin
from controlplane.iam_config import DirectorySource, open_directory
from controlplane.iam_gate import IamGatekeeper
from controlplane.security import Gatekeeper, TrustingGatekeeper
from controlplane.settings import Settings
from environments import store
from environments.airflow.runtime.manager import AirflowRuntime
from environments.airflow.runtime.metadata_db import MetadataDatabases
from environments.aws.clients import AwsClients, AwsTarget
from environments.contents.dag_reports import DagReporter, refresh_dag_report
from environments.contents.sync_service import DagSyncService
from environments.emulator.supervisor import EmbeddedAws
from environments.host import HostServices
from environments.naming import Placement
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
        create_once(path, f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}\n".encode(), mode=0o644)
    return path.read_text().strip()


@dataclass
class Runtime:
    settings: Settings
    store: Store
    service: EnvironmentService
    reconciler: Reconciler
    gatekeeper: Gatekeeper
    admin: KeyPair
    aws_endpoint: str | None
    dag_sync: DagSyncService | None = None
    dag_reports: DagReporter | None = None
    embedded_aws: EmbeddedAws | None = None
    directory: DirectorySource | None = None  # None: authentication is off
    airflow: AirflowRuntime | None = None  # None: --no-airflow
    _closers: list = field(default_factory=list)

    def start_background(self) -> None:
        if self.directory is not None:
            self.directory.start()
        if self.airflow is not None:
            # Before the reconciler: processes an earlier, killed run left are stopped first.
            self.airflow.start()
            threading.Thread(
                target=self.airflow.resume,
                args=(self.store,),
                kwargs={"region": self.settings.region, "account_id": self.settings.account_id},
                name="airflow-resume",
                daemon=True,
            ).start()
        self.reconciler.start()
        if self.dag_reports is not None:
            self.dag_reports.start()
        if self.dag_sync is not None:
            self.dag_sync.start()

    def stop_background(self) -> None:
        if self.dag_sync is not None:
            self.dag_sync.stop()
        if self.dag_reports is not None:
            self.dag_reports.stop()
        self.reconciler.stop()
        if self.airflow is not None:
            self.airflow.stop()
        if self.directory is not None:
            self.directory.stop()

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("error while shutting down")
        self._closers.clear()


def _spec_of(db: Store, name: str) -> dict | None:
    row = db.read_environment(name)
    return row.spec if row is not None else None


def build_runtime(settings: Settings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    admin = load_or_create_admin(settings.data_dir)
    # Read the IAM config before anything starts, so a broken file stops start-up cleanly.
    directory = (
        open_directory(settings.data_dir, settings.iam_config, settings.account_id, admin)
        if settings.auth_enabled
        else None
    )
    closers: list = []
    embedded: EmbeddedAws | None = None
    aws_endpoint = settings.aws_endpoint
    if aws_endpoint is None and not settings.real_aws:
        embedded = EmbeddedAws(settings.data_dir, host="127.0.0.1")
        embedded.start()
        closers.append(embedded.stop)
        aws_endpoint = embedded.endpoint
    db = Store(settings.db_url)
    db.create_schema()
    closers.append(db.dispose)
    placement = Placement(account_id=settings.account_id, region=settings.region)
    service = EnvironmentService(db, placement, max_environments=settings.max_environments)
    target = AwsTarget(
        region=settings.region,
        endpoint_url=aws_endpoint,
        access_key_id=admin.access_key_id if embedded else None,
        secret_access_key=admin.secret_access_key if embedded else None,
    )
    aws = AwsClients(target)
    airflow = (
        AirflowRuntime(
            settings.data_dir,
            aws,
            MetadataDatabases(),
            on_health=lambda name, healthy, reason: _follow_health(db, name, healthy, reason),
        )
        if settings.airflow_venvs
        else None
    )
    services = HostServices(
        aws=aws,
        airflow_runtime=airflow,
        data_dir=settings.data_dir,
        dag_events=settings.dag_events,
        airflow_venvs=settings.airflow_venvs,
        uv_cache_dir=settings.uv_cache_dir,
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
    )
    service.set_change_listener(reconciler.wake)
    admin_requester = Requester(
        arn=f"arn:aws:iam::{settings.account_id}:user/airdock-admin",
        iam_identity="user/airdock-admin",
    )
    return Runtime(
        settings=settings,
        store=db,
        service=service,
        reconciler=reconciler,
        gatekeeper=IamGatekeeper(directory, placement, service.resource_tags)
        if directory is not None
        else TrustingGatekeeper(admin_requester),
        admin=admin,
        aws_endpoint=aws_endpoint,
        dag_sync=DagSyncService(
            db, services, interval=settings.dag_sync_interval, on_change=reporter.request
        ),
        dag_reports=reporter,
        embedded_aws=embedded,
        directory=directory,
        airflow=airflow,
        _closers=closers,
    )


def _follow_health(db: Store, name: str, healthy: bool, reason: str) -> None:
    with db.transaction() as session:
        moved = store.follow_health(session, name, healthy, time.time())
    if moved:
        log.warning("environment %s is %s%s", name, moved, "" if healthy else f": {reason}")


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
