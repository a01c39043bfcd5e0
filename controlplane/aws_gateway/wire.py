"""The request as the gateway sees it, and refusals in each AWS protocol's own error shape.

AWS services speak five wire protocols, and botocore parses an error only in the shape of the
service's protocol: S3's REST-XML ``<Error>``, the query services' ``<ErrorResponse>``, EC2's
``<Response><Errors>``, JSON's ``__type`` and CloudWatch's CBOR map. Codes differ too (an unknown
key is ``InvalidAccessKeyId`` to S3, ``InvalidClientTokenId`` to IAM, ``AuthFailure`` to EC2,
``UnrecognizedClientException`` to a JSON service).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_QUERY_CREDENTIAL = re.compile(
    r"X-Amz-Credential=[^&]+?(?:/|%2F)\d{8}(?:/|%2F)([a-z0-9-]+)(?:/|%2F)([a-z0-9-]+)(?:/|%2F)",
    re.IGNORECASE,
)
_MAX_BODY = 5 * 1024**3 + 1024 * 1024  # S3's largest single PUT, plus framing


@dataclass
class Incoming:
    """One request: what was signed, and what authorization needs to read."""

    method: str
    raw_target: str
    path: str  # decoded
    query: list[tuple[str, str]]  # decoded pairs, in order
    headers: list[tuple[str, str]]  # lower-case names
    body: bytes
    source_ip: str
    service: str  # the signing name: s3, logs, sqs, iam, monitoring, ...
    region: str | None
    protocol: str  # rest-xml | query | ec2 | json | cbor
    params: dict[str, Any] = field(default_factory=dict)  # query form or JSON body

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def operation(self) -> str:
        """The RPC operation name (query, EC2, JSON and CBOR protocols)."""
        if self.protocol == "json":
            return (self.header("x-amz-target") or "").rpartition(".")[2]
        if self.protocol == "cbor":
            return self.path.rstrip("/").rpartition("/")[2]
        return str(self.params.get("Action", ""))


def read_request(environ: dict[str, Any]) -> Incoming:
    """Read the body once and put it back for moto."""
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length.isdigit():
        body = stream.read(min(int(length), _MAX_BODY)) if int(length) else b""
    elif environ.get("wsgi.input_terminated"):
        body = stream.read(_MAX_BODY)
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))

    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((key.replace("_", "-").lower(), value))
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if not raw:
        raw = quote(environ.get("PATH_INFO", "/"), safe="/")
        if environ.get("QUERY_STRING"):
            raw += "?" + environ["QUERY_STRING"]
    if raw.startswith(("http://", "https://")):  # an absolute-form target
        raw = "/" + raw.split("/", 3)[3] if raw.count("/") >= 3 else "/"
    raw_path, _, raw_query = raw.partition("?")
    query = parse_qsl(raw_query, keep_blank_values=True)
    incoming = Incoming(
        method=environ.get("REQUEST_METHOD", "GET").upper(),
        raw_target=raw,
        path=unquote(raw_path),
        query=query,
        headers=headers,
        body=body,
        source_ip=environ.get("REMOTE_ADDR", ""),
        service="s3",
        region=None,
        protocol="rest-xml",
    )
    _classify(incoming, raw_query)
    return incoming


def _classify(req: Incoming, raw_query: str) -> None:
    found = _CREDENTIAL.search(req.header("authorization") or "") or _QUERY_CREDENTIAL.search(
        raw_query
    )
    if found:
        req.region, req.service = found.group(1), found.group(2)
    content_type = (req.header("content-type") or "").split(";")[0].strip().lower()
    if req.header("x-amz-target"):
        req.protocol = "json"
        try:
            parsed = json.loads(req.body or b"{}")
        except ValueError:
            parsed = {}
        req.params = parsed if isinstance(parsed, dict) else {}
        if not found:
            req.service = _json_service(req.header("x-amz-target") or "")
        return
    if (req.header("smithy-protocol") or "").lower() == "rpc-v2-cbor":
        req.protocol = "cbor"
        if not found:
            req.service = "monitoring"
        return
    form = dict(req.query)
    if req.method == "POST" and content_type == "application/x-www-form-urlencoded":
        form.update(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    if "Action" in form and (not found or req.service != "s3"):
        req.params = form
        req.protocol = "ec2" if req.service == "ec2" else "query"
        if not found:
            req.service = "query"


def _json_service(target: str) -> str:
    prefix = target.partition(".")[0].lower()
    for hint, service in (
        ("logs", "logs"),
        ("sqs", "sqs"),
        ("trent", "kms"),
        ("monitor", "monitoring"),
    ):
        if hint in prefix:
            return service
    return prefix or "unknown"


# --- refusals -------------------------------------------------------------------------------

# What went wrong, independent of the protocol that reports it.
MISSING = "missing"
UNKNOWN_KEY = "unknown-key"
BAD_SIGNATURE = "bad-signature"
BAD_TOKEN = "bad-token"
EXPIRED = "expired"
MALFORMED = "malformed"
DENIED = "denied"
CLOSED = "closed"
UNAVAILABLE = "unavailable"  # the gateway could not decide: refuse rather than let it through

# kind -> protocol family -> (code, HTTP status)
_CODES: dict[str, dict[str, tuple[str, int]]] = {
    MISSING: {
        "rest-xml": ("AccessDenied", 403),
        "query": ("MissingAuthenticationToken", 403),
        "ec2": ("AuthFailure", 401),
        "json": ("MissingAuthenticationTokenException", 400),
    },
    UNKNOWN_KEY: {
        "rest-xml": ("InvalidAccessKeyId", 403),
        "query": ("InvalidClientTokenId", 403),
        "ec2": ("AuthFailure", 401),
        "json": ("UnrecognizedClientException", 400),
    },
    BAD_TOKEN: {
        "rest-xml": ("InvalidToken", 400),
        "query": ("InvalidClientTokenId", 403),
        "ec2": ("AuthFailure", 401),
        "json": ("UnrecognizedClientException", 400),
    },
    BAD_SIGNATURE: {
        "rest-xml": ("SignatureDoesNotMatch", 403),
        "query": ("SignatureDoesNotMatch", 403),
        "ec2": ("AuthFailure", 401),
        "json": ("InvalidSignatureException", 400),
    },
    EXPIRED: {
        "rest-xml": ("ExpiredToken", 400),
        "query": ("ExpiredToken", 403),
        "ec2": ("RequestExpired", 400),
        "json": ("ExpiredTokenException", 400),
    },
    MALFORMED: {
        "rest-xml": ("AuthorizationHeaderMalformed", 400),
        "query": ("IncompleteSignature", 400),
        "ec2": ("AuthFailure", 401),
        "json": ("IncompleteSignatureException", 400),
    },
    DENIED: {
        "rest-xml": ("AccessDenied", 403),
        "query": ("AccessDenied", 403),
        "ec2": ("UnauthorizedOperation", 403),
        "json": ("AccessDeniedException", 400),
    },
    CLOSED: {
        "rest-xml": ("AccessDenied", 403),
        "query": ("AccessDenied", 403),
        "ec2": ("UnauthorizedOperation", 403),
        "json": ("AccessDeniedException", 400),
    },
    UNAVAILABLE: {
        "rest-xml": ("ServiceUnavailable", 503),
        "query": ("ServiceUnavailable", 503),
        "ec2": ("Unavailable", 503),
        "json": ("ServiceUnavailableException", 503),
    },
}


class Refusal(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def error_code(kind: str, protocol: str) -> tuple[str, int]:
    family = "json" if protocol == "cbor" else protocol
    return _CODES[kind][family]


def render_refusal(req: Incoming, refusal: Refusal) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the error, in the request's protocol."""
    code, status = error_code(refusal.kind, req.protocol)
    if code == "AuthorizationHeaderMalformed" and not req.header("authorization"):
        code = "AuthorizationQueryParametersError"  # S3's name when a presigned URL is bad
    request_id = str(uuid.uuid4())
    message = refusal.message
    headers = [("x-amzn-RequestId", request_id)]
    if req.protocol == "rest-xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers.append(("Content-Type", "application/xml"))
    elif req.protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    elif req.protocol == "query":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    elif req.protocol == "cbor":
        body = _cbor_map({"__type": code, "message": message})
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    headers.append(("Content-Length", str(len(body))))
    reason = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        503: "Service Unavailable",
    }[status]
    return f"{status} {reason}", headers, body


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    size = len(data)
    if size < 24:
        head = bytes([0x60 | size])
    elif size < 256:
        head = bytes([0x78, size])
    else:
        head = bytes([0x79]) + size.to_bytes(2, "big")
    return head + data


def _cbor_map(values: dict[str, str]) -> bytes:
    """A CBOR map of short text strings (RFC 8949, major types 3 and 5): all an error needs."""
    out = bytes([0xA0 | len(values)])
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value[:60000])
    return out
