"""AWS clients for provisioning, pointed at the embedded AWS or at a real endpoint."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config


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
    lock from one session. Sharing matters: each session loads its own copy of the service
    models (EC2's alone is tens of MB), which per-thread clients multiplied by the workers.
    """

    def __init__(self, target: AwsTarget, *, max_attempts: int = 3) -> None:
        self.target = target
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
                    self._session = boto3.session.Session(
                        aws_access_key_id=self.target.access_key_id,
                        aws_secret_access_key=self.target.secret_access_key,
                        region_name=self.target.region,
                    )
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.target.endpoint_url, config=self._config
                )
            return self._clients[service]
