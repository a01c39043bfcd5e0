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
    """Thread-safe cache of boto3 clients (a boto3 Session is not safe to share)."""

    def __init__(self, target: AwsTarget, *, max_attempts: int = 3) -> None:
        self.target = target
        self._config = Config(
            region_name=target.region,
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=30,
            s3={"addressing_style": "path"},
        )
        self._lock = threading.Lock()
        self._clients: dict[tuple[int, str], Any] = {}

    def client(self, service: str) -> Any:
        key = (threading.get_ident(), service)
        found = self._clients.get(key)
        if found is not None:
            return found
        with self._lock:
            session = boto3.session.Session(
                aws_access_key_id=self.target.access_key_id,
                aws_secret_access_key=self.target.secret_access_key,
                region_name=self.target.region,
            )
            made = session.client(
                service, endpoint_url=self.target.endpoint_url, config=self._config
            )
            self._clients[key] = made
            return made
