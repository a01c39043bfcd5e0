"""Wiring: builds the store, service, reconciler and gatekeeper from Settings."""

from __future__ import annotations

import logging
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.credentials import AccessKey, load_or_create_admin
from controlplane.security import Gatekeeper, TrustingGatekeeper
from controlplane.settings import Settings
from environments.aws import AwsClients, AwsTarget
from environments.embedded_aws import EmbeddedAws
from environments.identity import Placement
from environments.provisioning import default_steps
from environments.reconciler import Reconciler
from environments.service import Caller, EnvironmentService
from environments.steps.base import StepServices
from environments.store import Store

log = logging.getLogger(__name__)


def replica_id(data_dir: Path) -> str:
    """A stable name for this replica, so a restart reclaims its own leases at once."""
    path = data_dir / "replica-id"
    if not path.exists():
        path.write_text(f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}\n")
    return path.read_text().strip()


@dataclass
class Runtime:
    settings: Settings
    store: Store
    service: EnvironmentService
    reconciler: Reconciler
    gatekeeper: Gatekeeper
    admin: AccessKey
    aws_endpoint: str | None
    embedded_aws: EmbeddedAws | None = None
    _closers: list = field(default_factory=list)

    def start_background(self) -> None:
        self.reconciler.start()

    def stop_background(self) -> None:
        self.reconciler.stop()

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("error while shutting down")
        self._closers.clear()


def build_runtime(settings: Settings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    closers: list = []
    embedded: EmbeddedAws | None = None
    aws_endpoint = settings.aws_endpoint
    if aws_endpoint is None:
        embedded = EmbeddedAws(settings.data_dir, host="127.0.0.1")
        embedded.start()
        closers.append(embedded.stop)
        aws_endpoint = embedded.endpoint
    admin = load_or_create_admin(settings.data_dir)
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
    reconciler = Reconciler(
        db,
        placement,
        default_steps(),
        owner=replica_id(settings.data_dir),
        workers=settings.reconciler_workers,
        poll_interval=settings.poll_interval,
        services=StepServices(aws=AwsClients(target)),
    )
    service.set_change_listener(reconciler.wake)
    admin_caller = Caller(
        arn=f"arn:aws:iam::{settings.account_id}:user/airdock-admin",
        iam_identity="user/airdock-admin",
    )
    return Runtime(
        settings=settings,
        store=db,
        service=service,
        reconciler=reconciler,
        gatekeeper=TrustingGatekeeper(admin_caller),
        admin=admin,
        aws_endpoint=aws_endpoint,
        embedded_aws=embedded,
        _closers=closers,
    )
