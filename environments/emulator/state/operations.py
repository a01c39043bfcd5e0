"""Telling read-only AWS calls from mutating ones, from the raw WSGI request.

Only a hint for the change tracker, so it errs on the side of "mutating": an unknown shape of
request counts as a change and merely costs one extra snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

_READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Head", "BatchGet", "Filter", "Lookup")

# Calls whose names read like queries but that create state in moto.
_WRITES_DESPITE_THEIR_NAME = frozenset(
    {
        "GetId",
        "GetOpenIdToken",
        "GetOpenIdTokenForDeveloperIdentity",
        "GetCredentialsForIdentity",
        "GetParametersForImport",
        "GetSessionToken",
        "GetFederationToken",
    }
)

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPE = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 1 << 20


def operation_name(environ: Mapping[str, Any], body: bytes) -> str | None:
    """The AWS operation a request calls, when its protocol names it; None for REST calls."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        # awsJson: "Service_20140328.OperationName"
        return str(target).rsplit(".", 1)[-1]
    path = str(environ.get("PATH_INFO", ""))
    if "/operation/" in path:
        # smithy-rpc-v2-cbor: /service/<Service>/operation/<OperationName>
        return path.rstrip("/").rsplit("/", 1)[-1]
    action = _query_action(str(environ.get("QUERY_STRING", "")))
    if action:
        return action
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if content_type.startswith(_FORM_TYPE) and len(body) <= _MAX_FORM_BYTES:
        # query and ec2 protocols: Action=OperationName in a form body
        return _query_action(body.decode("latin-1"))
    return None


def is_read_only(environ: Mapping[str, Any], body: bytes) -> bool:
    name = operation_name(environ, body)
    if name is None:
        return str(environ.get("REQUEST_METHOD", "")).upper() in _READ_ONLY_METHODS
    return name.startswith(_READ_ONLY_PREFIXES) and name not in _WRITES_DESPITE_THEIR_NAME


def _query_action(query: str) -> str | None:
    if "Action=" not in query:
        return None
    values = parse_qs(query).get("Action")
    return values[0] if values else None
