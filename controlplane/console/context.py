"""What the console needs from the server, and who is signed in.

Identity and authorization are the API's: keys are checked against the same directory the
SigV4 gatekeeper reads, and every action is an `Intent` the same gatekeeper authorizes.
"""

from __future__ import annotations

import functools
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

import iam
from controlplane.clientconfig import read_endpoints
from controlplane.console import sessions
from controlplane.credentials import KeyPair, read_admin
from controlplane.iam_config import DirectorySource
from controlplane.security import Gatekeeper, Intent
from environments.aws.clients import AwsClients, AwsTarget
from environments.errors import AccessDeniedException
from environments.service import EnvironmentService, Requester


@dataclass
class ConsoleContext:
    service: EnvironmentService
    gatekeeper: Gatekeeper
    directory: DirectorySource | None  # None: authentication is off (benchmarks)
    data_dir: Path | None

    @functools.cached_property
    def session_key(self) -> bytes:
        return self.service.shared_secret("console-session-key")

    @functools.cached_property
    def admin(self) -> KeyPair | None:
        """The bootstrap admin's key: the only one when authentication is off, and the key
        the console reads the embedded AWS's logs with."""
        if self.data_dir is None:
            return None
        try:
            return read_admin(self.data_dir)
        except (OSError, ValueError):
            return None

    @functools.cached_property
    def aws(self) -> AwsClients | None:
        """Clients for the AWS the server provisions in, as its endpoints.json records it."""
        if self.data_dir is None:
            return None
        try:
            endpoints = read_endpoints(self.data_dir)
        except (OSError, ValueError):
            return None
        key = self.admin if endpoints.aws_embedded else None
        return AwsClients(
            AwsTarget(
                region=endpoints.region,
                endpoint_url=endpoints.aws_endpoint,
                access_key_id=key.access_key_id if key else None,
                secret_access_key=key.secret_access_key if key else None,
            )
        )

    # --- who -----------------------------------------------------------------------------

    def sign_in(self, access_key_id: str, secret: str, token: str | None) -> float | None:
        """When the key pair is valid: the time its session must end by (a temporary key's
        expiry, else the usual session length). None when it is not valid."""
        limit = time.time() + sessions.SESSION_SECONDS
        if self.directory is None:
            if self.admin is None:
                return None
            valid = hmac.compare_digest(access_key_id, self.admin.access_key_id) and (
                hmac.compare_digest(secret, self.admin.secret_access_key)
            )
            return limit if valid else None
        directory = self.directory.current
        try:
            expected = directory.lookup_secret(access_key_id, token or None)
        except iam.SigV4Error:
            return None
        if not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        key = directory.find_key(access_key_id)
        if key is not None and key.expires_at is not None:
            limit = min(limit, key.expires_at.timestamp())
        return limit

    def requester(self, request: Request, session: sessions.Session) -> Requester | None:
        """The principal a live session acts as; None once its key is gone."""
        if self.directory is None:
            if self.admin is None or session.access_key_id != self.admin.access_key_id:
                return None
            return self.gatekeeper.authenticate(request, b"")
        principal = self.directory.current.principal_for_key(session.access_key_id)
        if principal is None:
            return None
        return Requester(
            arn=principal.arn,
            iam_identity=principal.arn.split(":", 5)[5],
            principal=principal,
        )

    # --- may they ------------------------------------------------------------------------

    def allowed(self, request: Request, requester: Requester, intent: Intent) -> bool:
        try:
            self.gatekeeper.authorize(request, requester, intent)
        except AccessDeniedException:
            return False
        return True

    def require(self, request: Request, requester: Requester, intent: Intent) -> None:
        self.gatekeeper.authorize(request, requester, intent)  # AccessDeniedException

    def on_environment(self, action: str, name: str, **extra: Any) -> Intent:
        service = self.service
        return Intent(
            action,
            service.placement.environment_arn(name),
            resource_tags=lambda: service.resource_tags(name),
            **extra,
        )
