"""The WSGI middleware: authenticate, authorize, then hand the request to moto.

Order per request: moto's management routes are closed; the SigV4 signature is verified (for an
S3 streaming upload, every chunk too); STS's AssumeRole and GetCallerIdentity are answered here;
anyone but the bootstrap admin is authorized per action with identity policies plus the bucket
or queue policy of the target. A refusal is answered in the service's own error shape and the
request goes no further, so it changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import iam
from controlplane.aws_gateway import wire
from controlplane.aws_gateway.checks import Check, Where
from controlplane.aws_gateway.identity import Identities
from controlplane.aws_gateway.launch import CONFIG_ENV
from controlplane.aws_gateway.moto_state import MotoState
from controlplane.aws_gateway.rpc_actions import rpc_checks
from controlplane.aws_gateway.s3_actions import s3_checks
from controlplane.aws_gateway.sts import StsInvalid, assume_role, caller_identity
from controlplane.aws_gateway.wire import Incoming, Refusal
from iam.sigv2_presign import is_presigned_v2, verify_presigned_v2
from iam.sigv4_chunks import verify_chunks

log = logging.getLogger("airdock.aws_gateway")

_CLOSED_PREFIXES = ("/moto-api",)
_SIGV4_KINDS = {
    iam.SigV4Error.MISSING: wire.MISSING,
    iam.SigV4Error.INCOMPLETE: wire.MALFORMED,
    iam.SigV4Error.UNRECOGNIZED: wire.UNKNOWN_KEY,
    iam.SigV4Error.EXPIRED: wire.EXPIRED,
    iam.SigV4Error.INVALID: wire.BAD_SIGNATURE,
}
_S3_MESSAGES = {
    wire.UNKNOWN_KEY: "The AWS Access Key Id you provided does not exist in our records.",
    wire.MISSING: "Access Denied",
}

StartResponse = Callable[..., Any]


class AwsGateway:
    def __init__(self, app: Any, identities: Identities, state: MotoState, where: Where) -> None:
        self._app = app
        self._identities = identities
        self._state = state
        self._where = where

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        req = wire.read_request(environ)
        try:
            try:
                answer = self._admit(req, environ.get("PATH_INFO") or "/")
            except (Refusal, StsInvalid):
                raise
            except Exception:
                # Fail closed: a request the gateway could not decide on goes no further.
                log.exception("could not decide on %s %s", req.method, req.path[:200])
                raise Refusal(wire.UNAVAILABLE, "Please try again.") from None
        except Refusal as refusal:
            log.info(
                "refused %s %s from %s: %s: %s",
                req.method,
                req.path[:200],
                req.source_ip,
                refusal.kind,
                refusal.message,
            )
            status, headers, body = wire.render_refusal(req, refusal)
            start_response(status, headers)
            return [body]
        except StsInvalid as err:
            body = _query_error("ValidationError", str(err))
            start_response("400 Bad Request", [("Content-Type", "text/xml")])
            return [body]
        if answer is not None:
            start_response(
                "200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(answer)))]
            )
            return [answer]
        return self._app(environ, start_response)

    def _admit(self, req: Incoming, path_info: str) -> bytes | None:
        """None: pass the request on to moto; bytes: the gateway's own answer."""
        if path_info.lstrip("/").startswith(tuple(p.lstrip("/") for p in _CLOSED_PREFIXES)):
            raise Refusal(wire.CLOSED, "The emulator's management routes are closed.")
        principal = self._authenticate(req)
        context = self._context(req)
        if req.service == "sts" and req.operation == "GetCallerIdentity":
            return caller_identity(principal)
        if req.service == "sts" and req.operation == "AssumeRole":
            return assume_role(req, principal, self._identities, self._state, context)
        if principal.arn == self._identities.admin_arn():
            return None  # the bootstrap admin keeps full access
        for check in self._checks(req):
            self._authorize(principal, check, context)
        return None

    # --- authentication ---------------------------------------------------------------------

    def _authenticate(self, req: Incoming) -> iam.Principal:
        try:
            if req.protocol == "rest-xml" and is_presigned_v2(dict(req.query)):
                verified = verify_presigned_v2(
                    req.method, req.raw_target, self._identities.lookup_secret
                )
            else:
                verified = iam.verify_request(
                    req.method,
                    req.raw_target,
                    req.headers,
                    req.body,
                    self._identities.lookup_secret,
                    expected_service=None,
                )
            if verified.payload.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
                secret = self._identities.lookup_secret(
                    verified.access_key_id, verified.session_token
                )
                verify_chunks(req.body, verified, secret)
        except iam.SigV4Error as err:
            kind = _SIGV4_KINDS.get(err.code, wire.BAD_SIGNATURE)
            if kind == wire.UNKNOWN_KEY and "token" in err.message and _has_token(req):
                kind = wire.BAD_TOKEN
            message = (
                _S3_MESSAGES.get(kind, err.message) if req.protocol == "rest-xml" else err.message
            )
            raise Refusal(kind, message) from None
        principal = self._identities.principal(verified.access_key_id)
        if principal is None:
            raise Refusal(
                wire.UNKNOWN_KEY, "The security token included in the request is invalid."
            )
        return principal

    # --- authorization ----------------------------------------------------------------------

    def _checks(self, req: Incoming) -> list[Check]:
        if req.protocol == "rest-xml":
            return s3_checks(req)
        return rpc_checks(req, self._where, self._state.role_path)

    def _context(self, req: Incoming) -> dict[str, str]:
        now = time.time()
        return {
            "aws:CurrentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "aws:EpochTime": str(int(now)),
            # The embedded AWS listens on loopback only: its traffic never crosses a network,
            # which is what a policy that demands secure transport guards against.
            "aws:SecureTransport": "true",
            "aws:SourceIp": req.source_ip,
            "aws:RequestedRegion": req.region or self._where.region,
        }

    def _authorize(self, principal: iam.Principal, check: Check, context: dict[str, str]) -> None:
        resource_policies = []
        if check.owner is not None:
            kind, name = check.owner
            policy = (
                self._state.bucket_policy(name) if kind == "s3" else self._state.queue_policy(name)
            )
            if policy is not None:
                resource_policies.append(policy)
        decision = iam.authorize(
            principal, check.action, check.resource, {**context, **check.context}, resource_policies
        )
        if not decision.allowed:
            raise Refusal(
                wire.DENIED,
                iam.access_denied_message(principal, check.action, check.resource, decision),
            )


def _has_token(req: Incoming) -> bool:
    return bool(req.header("x-amz-security-token")) or any(
        name == "X-Amz-Security-Token" for name, _ in req.query
    )


def _query_error(code: str, message: str) -> bytes:
    return (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{escape(message)}</Message></Error><RequestId>-</RequestId></ErrorResponse>"
    ).encode()


# --- the factory the emulator loads ---------------------------------------------------------


def from_environment(app: Any) -> AwsGateway:
    """Wrap moto's WSGI app; configured by :data:`CONFIG_ENV` (see launch.gateway_environment)."""
    from controlplane.credentials import read_admin
    from controlplane.iam_config import DirectorySource
    from controlplane.keystore import KeyCache, KeyStore
    from environments.store import Store

    config = json.loads(os.environ[CONFIG_ENV])
    data_dir = Path(config["data_dir"])
    store = KeyStore(data_dir, Store(config["database_url"]))
    keys = KeyCache(store)
    source = DirectorySource(
        path=Path(config["iam_config"]) if config["iam_config"] else None,
        account_id=config["account_id"],
        admin=read_admin(data_dir),
        keys=keys,
    )
    source.start()
    where = Where(config["account_id"], config["region"])
    state = MotoState(where.account_id, where.region)
    log.info("authenticating and authorizing every request (IAM config: %s)", source.path)
    return AwsGateway(app, Identities(source, keys, store, state), state, where)
