"""The IAM gatekeeper: SigV4 authentication and policy-based authorization of every MWAA call.

Authentication recomputes the signature over exactly what the client signed: the raw request
target (ASGI ``raw_path`` + ``query_string``, so an ARN stays percent-encoded as on the wire),
the headers including the Host the client used, and the raw body. Authorization evaluates the
route's :class:`~controlplane.security.Intent` for the principal with the request context a real
AWS service would supply. A failure raises a domain error before the service is touched, so a
refused call changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn
from urllib.parse import quote

from starlette.requests import Request

import iam
from controlplane.errors import SIGV4_ERRORS, UnrecognizedClientException
from controlplane.execution_sessions import ExecutionRoleSessions
from controlplane.iam_config import DirectorySource
from controlplane.security import Intent
from environments.errors import AccessDeniedException
from environments.naming import Placement
from environments.service import Requester

log = logging.getLogger("airdock.auth")

# Highest first: a caller gets the most capable Airflow role its policies allow.
AIRFLOW_ROLES = ("Admin", "Op", "User", "Viewer", "Public")
PASSED_TO_SERVICE = "airflow.amazonaws.com"

Context = dict[str, str | Sequence[str]]
TagsOf = Callable[[str], "Mapping[str, str] | None"]


def raw_target(scope: Mapping) -> str:
    """The request target as the client sent it, still percent-encoded."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope.get("path", "/"), safe="/")
    query = scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


_TOKEN_IN_HEADER = re.compile(r"^(x-amz-security-token:).*$", re.MULTILINE | re.IGNORECASE)
_TOKEN_IN_QUERY = re.compile(r"(X-Amz-Security-Token=)[^&\n]*", re.IGNORECASE)


def _redact(detail: str) -> str:
    """The canonical request holds the signed headers' values; a session token is a secret."""
    detail = _TOKEN_IN_HEADER.sub(r"\1<redacted>", detail)
    return _TOKEN_IN_QUERY.sub(r"\1<redacted>", detail)


def _tag_context(tags: Mapping[str, str] | None) -> Context:
    return {f"aws:ResourceTag/{key}": value for key, value in (tags or {}).items()}


class _Clock:
    """aws:CurrentTime / aws:EpochTime, formatted once per second rather than per request."""

    def __init__(self) -> None:
        self._value: tuple[int, str, str] = (-1, "", "")

    def now(self) -> tuple[str, str]:
        second = int(time.time())
        cached = self._value
        if cached[0] != second:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            cached = (second, stamp, str(second))
            self._value = cached  # one tuple swap: safe without a lock
        return cached[1], cached[2]


class IamGatekeeper:
    """Implements :class:`controlplane.security.Gatekeeper` with the ``iam`` library."""

    def __init__(
        self,
        source: DirectorySource,
        placement: Placement,
        tags_of: TagsOf,
        execution_roles: ExecutionRoleSessions | None = None,
    ) -> None:
        self._source = source
        self._execution_roles = execution_roles
        self._placement = placement
        self._region = placement.region
        self._tags_of = tags_of
        self._clock = _Clock()
        # Per policy: does it read aws:ResourceTag? If no policy of the caller does, the
        # environment's tags are never fetched (the admin's calls cost no extra read).
        self._reads_tags: dict[int, tuple[iam.Policy, bool]] = {}
        self._reads_tags_for: iam.Directory | None = None

    # --- authentication -----------------------------------------------------------------

    def authenticate(self, request: Request, body: bytes) -> Requester:
        directory = self._source.current
        scope = request.scope
        try:
            verified = iam.verify_request(
                scope["method"],
                raw_target(scope),
                scope["headers"],
                body,
                self._secret_lookup(directory),
                expected_region=self._region,
            )
        except iam.SigV4Error as err:
            self._log_refusal(request, err)
            raise SIGV4_ERRORS[err.code](err.message) from None
        principal = directory.principal_for_key(verified.access_key_id)
        if principal is None and self._execution_roles is not None:
            principal = self._execution_roles.principal(verified.access_key_id)
        if principal is None:  # the owner vanished between the two lookups (a reload)
            raise UnrecognizedClientException(
                "The security token included in the request is invalid."
            )
        return Requester(
            arn=principal.arn,
            iam_identity=principal.arn.split(":", 5)[5],  # "user/alice", "assumed-role/R/S"
            principal=principal,
        )

    def _secret_lookup(self, directory: iam.Directory) -> Callable[[str, str | None], str]:
        """The directory's keys, then sessions of the environments' execution roles."""
        sessions = self._execution_roles
        if sessions is None:
            return directory.lookup_secret

        def lookup(access_key_id: str, session_token: str | None) -> str:
            try:
                return directory.lookup_secret(access_key_id, session_token)
            except iam.SigV4Error as err:
                if err.code != iam.SigV4Error.UNRECOGNIZED:
                    raise
            return sessions.lookup_secret(access_key_id, session_token)

        return lookup

    @staticmethod
    def _log_refusal(request: Request, err: iam.SigV4Error) -> None:
        client = request.client.host if request.client else "-"
        log.info(
            "authentication failed: %s %s from %s: %s: %s",
            request.method,
            request.url.path,
            client,
            err.code,
            err.message,
        )
        if err.detail and log.isEnabledFor(logging.DEBUG):
            log.debug("signature detail:\n%s", _redact(err.detail))

    # --- authorization ------------------------------------------------------------------

    def authorize(self, request: Request, requester: Requester, intent: Intent) -> None:
        principal = self._principal(requester)
        base = self._base_context(request)
        self._require(principal, intent, self._context(base, principal, intent))
        for extra in intent.also:
            context = self._context(base, principal, extra)
            if extra.action.lower() == "iam:passrole":
                context.setdefault("iam:AssociatedResourceArn", intent.resource)
            self._require(principal, extra, context)

    def airflow_role(
        self, request: Request, requester: Requester, env_name: str, action: str
    ) -> str:
        principal = self._principal(requester)
        context = self._base_context(request)
        if self._reads_resource_tags(principal):
            # An Airflow role belongs to its environment: its tags let team policies scope
            # web-server access the same way they scope the environment itself.
            context.update(_tag_context(self._tags_of(env_name)))
        denied: list[tuple[str, iam.Decision]] = []
        for role in AIRFLOW_ROLES:
            resource = self._placement.rbac_role_arn(env_name, role)
            decision = iam.authorize(principal, action, resource, context)
            if decision.allowed:
                return role
            denied.append((resource, decision))
        # Name the Admin role, the one a caller would ask an administrator for.
        self._deny(principal, action, *denied[0])

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _principal(requester: Requester) -> iam.Principal:
        principal = requester.principal
        if not isinstance(principal, iam.Principal):
            # Only authenticate() makes Requesters for this gatekeeper; anything else is a bug.
            raise AccessDeniedException("The request was not authenticated.")
        return principal

    def _base_context(self, request: Request) -> Context:
        current, epoch = self._clock.now()
        scope = request.scope
        context: Context = {
            "aws:CurrentTime": current,
            "aws:EpochTime": epoch,
            "aws:SecureTransport": "true" if scope.get("scheme") == "https" else "false",
            "aws:RequestedRegion": self._region,
        }
        client = scope.get("client")
        if client:
            context["aws:SourceIp"] = client[0]
        return context

    def _context(self, base: Context, principal: iam.Principal, intent: Intent) -> Context:
        context = {**base, **intent.context}
        if intent.resource_tags is not None and self._reads_resource_tags(principal):
            context.update(_tag_context(intent.resource_tags()))
        return context

    def _require(self, principal: iam.Principal, intent: Intent, context: Context) -> None:
        decision = iam.authorize(principal, intent.action, intent.resource, context)
        if not decision.allowed:
            self._deny(principal, intent.action, intent.resource, decision)

    @staticmethod
    def _deny(
        principal: iam.Principal, action: str, resource: str, decision: iam.Decision
    ) -> NoReturn:
        log.info("access denied: %s %s on %s (%s)", principal.arn, action, resource, decision)
        raise AccessDeniedException(
            iam.access_denied_message(principal, action, resource, decision)
        )

    def _reads_resource_tags(self, principal: iam.Principal) -> bool:
        directory = self._source.current
        if directory is not self._reads_tags_for:  # a reload: forget the old policies
            self._reads_tags = {}
            self._reads_tags_for = directory
        cache = self._reads_tags
        policies = [*principal.identity_policies, *(principal.session_policies or ())]
        if principal.boundary is not None:
            policies.append(principal.boundary)
        found = False
        for policy in policies:
            entry = cache.get(id(policy))
            if entry is None:
                # Keyed by id, holding the policy so the id cannot be reused while cached.
                entry = (policy, "aws:resourcetag" in json.dumps(policy.to_dict()).lower())
                cache[id(policy)] = entry
            found = found or entry[1]
        return found
