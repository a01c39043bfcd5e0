"""AWS clients for provisioning, pointed at the embedded AWS or at a real endpoint."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials

from environments.plumbing import botocore_data

# A role's clients are made again after this long, so a role deleted and created again under
# the same name is assumed afresh (its old sessions stop working).
ROLE_CLIENTS_SECONDS = 600.0
ROLE_SESSION_SECONDS = 3600
ROLE_SESSION_NAME = "airdock"


@dataclass(frozen=True)
class AwsTarget:
    """Where provisioning calls go. endpoint_url None means the real AWS endpoints."""

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


class AwsClients:
    """One boto3 client per service, shared by every thread.

    botocore clients are thread-safe once made; sessions are not, so clients are made under a
    lock from one session. Sharing matters: each session would load its own copy of the service
    models (EC2's alone is tens of MB), which per-thread clients multiplied by the workers; the
    sessions of every AwsClients in the process share one loader too.
    """

    def __init__(
        self,
        target: AwsTarget,
        *,
        max_attempts: int = 3,
        credentials: DeferredRefreshableCredentials | None = None,
    ) -> None:
        self.target = target
        self._max_attempts = max_attempts
        self._credentials = credentials
        self._roles: dict[str, tuple[float, AwsClients]] = {}
        self._config = Config(
            region_name=target.region,
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
            s3={"addressing_style": "path"},
        )
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is not None:
            return found
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = self._new_session()
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.target.endpoint_url, config=self._config
                )
            return self._clients[service]

    def _new_session(self) -> boto3.session.Session:
        # Every session reads the service models through one loader (botocore_data): a
        # session per role would otherwise parse each model again.
        core = botocore_data.new_session()
        if self._credentials is None:
            return boto3.session.Session(
                aws_access_key_id=self.target.access_key_id,
                aws_secret_access_key=self.target.secret_access_key,
                region_name=self.target.region,
                botocore_session=core,
            )
        # botocore has no public setter for a session's credentials object; its own
        # assume-role provider hands the same kind of object to the session this way.
        core._credentials = self._credentials
        return boto3.session.Session(botocore_session=core, region_name=self.target.region)

    def as_role(self, role_arn: str) -> AwsClients:
        """Clients acting as ``role_arn``: sessions from sts:AssumeRole, renewed before they
        expire. This is how environment work reads what the execution role may read, and
        nothing more (as MWAA does)."""
        now = time.monotonic()
        with self._lock:
            made = self._roles.get(role_arn)
            if made is not None and now - made[0] < ROLE_CLIENTS_SECONDS:
                return made[1]

        def assume() -> dict[str, str]:
            answer = self.client("sts").assume_role(
                RoleArn=role_arn,
                RoleSessionName=ROLE_SESSION_NAME,
                DurationSeconds=ROLE_SESSION_SECONDS,
            )["Credentials"]
            return {
                "access_key": answer["AccessKeyId"],
                "secret_key": answer["SecretAccessKey"],
                "token": answer["SessionToken"],
                "expiry_time": answer["Expiration"].isoformat(),
            }

        credentials = DeferredRefreshableCredentials(refresh_using=assume, method="assume-role")
        clients = AwsClients(self.target, max_attempts=self._max_attempts, credentials=credentials)
        with self._lock:
            self._roles[role_arn] = (now, clients)
        return clients
