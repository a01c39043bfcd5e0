"""Server-side verification of AWS Signature Version 4 (Authorization header or presigned URL).

The signature is recomputed with botocore's own signer, fed with exactly what the client
signed: the raw (still percent-encoded) request target, only the headers named in
SignedHeaders, and the raw body. Reusing botocore keeps URI encoding and header canonicalisation
identical to the SDKs that sign requests for this service.

Order of checks: shape (IncompleteSignature), time and scope (InvalidSignature), then the secret
lookup (UnrecognizedClient / ExpiredToken), then the signature itself. Messages never contain a
secret or the signature the server computed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote, unquote_to_bytes

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from iam.errors import SigV4Error

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 604_800
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SCOPE_DATE = re.compile(r"\d{8}", re.ASCII)
_EXPIRES = re.compile(r"\d{1,7}", re.ASCII)
_ACCESS_KEY = re.compile(r"[A-Za-z0-9]{1,128}")
_SCOPE_NAME = re.compile(r"[a-z0-9-]{1,64}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# S3 lets a client sign a placeholder instead of the body's hash: the payload is then either
# not signed at all, or sent as aws-chunked frames each signed on its own (iam.sigv4_chunks).
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
_S3_PAYLOAD_MODES = frozenset(
    {
        UNSIGNED_PAYLOAD,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        STREAMING_SIGNED,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    }
)
_QUERY_AUTH = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

SecretLookup = Callable[[str, "str | None"], str]


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """Who signed the request, and for which region/service."""

    access_key_id: str
    region: str
    service: str
    session_token: str | None
    # What the signature covers of the body: its SHA-256, or one of S3's placeholders.
    payload: str = ""
    signature: str = field(default="", repr=False)
    timestamp: str = ""  # X-Amz-Date as signed, YYYYMMDDTHHMMSSZ


@dataclass(frozen=True, slots=True)
class _AuthParts:
    credential: str
    signed_headers: str
    signature: str
    timestamp: dt.datetime
    stamp: str  # the timestamp as signed, YYYYMMDD'T'HHMMSS'Z'
    session_token: str | None
    expires: int | None  # presigned URLs only


class HeaderSet:
    """Case-insensitive multi-valued headers.

    Deliberately not botocore's ``HTTPHeaders`` (an ``email.message.Message``), which turns
    non-ASCII values into ``Header`` objects. It offers the few methods botocore's signer uses.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[str]] = {}

    def add(self, name: str, value: str) -> None:
        self._values.setdefault(name.lower(), []).append(value)

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        return self._values.get(name.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()][0]


def _text(value: str | bytes) -> str:
    """Header names/values as text; raw bytes (e.g. ASGI headers) are decoded as Latin-1."""
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else value


def _incomplete(message: str) -> SigV4Error:
    return SigV4Error(SigV4Error.INCOMPLETE, message)


def _invalid(message: str, detail: str | None = None) -> SigV4Error:
    return SigV4Error(SigV4Error.INVALID, message, detail=detail)


def _split_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((key, value))
    return pairs


def canonical_query_string(pairs: Sequence[tuple[str, str]], *, presigned: bool) -> str:
    """Decode, re-encode (RFC 3986, ``/`` encoded too) and sort the raw query pairs.

    Working on bytes keeps a client's percent-encoding of non-UTF-8 octets intact.
    """
    encoded = []
    for raw_key, raw_value in pairs:
        key = quote(unquote_to_bytes(raw_key), safe="-_.~")
        if presigned and key == "X-Amz-Signature":
            continue
        encoded.append((key, quote(unquote_to_bytes(raw_value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(encoded))


def _single(headers: HeaderSet, name: str) -> str | None:
    values = headers.get_all(name) or []
    if len(values) > 1:
        raise _incomplete(f"Multiple '{name}' headers are not allowed.")
    return values[0] if values else None


def _parse_stamp(text: str) -> dt.datetime:
    if not _STAMP.fullmatch(text):
        raise _incomplete("X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z'.")
    try:
        # The pattern above fixed every position; slicing beats strptime on this hot path.
        return dt.datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise _incomplete("X-Amz-Date is not a valid date.") from None


def _header_auth(authorization: str, headers: HeaderSet) -> _AuthParts:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Authorization header must use the {ALGORITHM} algorithm.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name:
            raise _incomplete(f"Authorization header element is not 'key=value': {name[:32]!r}.")
        if name in fields:
            raise _incomplete(f"Authorization header repeats '{name[:32]}'.")
        fields[name] = value.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise _incomplete(f"Authorization header requires '{required}' parameter.")
    amz_date = _single(headers, "x-amz-date")
    if amz_date is not None:
        stamp = amz_date.strip()
        timestamp = _parse_stamp(stamp)
    else:
        date = _single(headers, "date")
        if date is None:
            raise _incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a "
                "'Date' header."
            )
        try:
            timestamp = parsedate_to_datetime(date).astimezone(dt.UTC)
            stamp = timestamp.strftime(_STAMP_FORMAT)
        except (TypeError, ValueError, IndexError, OverflowError):
            raise _incomplete("Date header is not a valid HTTP date.") from None
    return _AuthParts(
        credential=fields["Credential"],
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        timestamp=timestamp,
        stamp=stamp,
        session_token=_single(headers, "x-amz-security-token"),
        expires=None,
    )


def _query_auth(pairs: Sequence[tuple[str, str]]) -> _AuthParts:
    params: dict[str, str] = {}
    for raw_key, raw_value in pairs:
        key = unquote(raw_key)
        if key.startswith("X-Amz-"):
            if key in params:
                raise _incomplete(f"Query parameter '{key[:40]}' appears more than once.")
            params[key] = unquote(raw_value)
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise _incomplete(f"X-Amz-Algorithm must be {ALGORITHM}.")
    for name in ("X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Date"):
        if not params.get(name):
            raise _incomplete(f"Query-string authentication requires the {name} parameter.")
    raw_expires = params.get("X-Amz-Expires", "")
    if not _EXPIRES.fullmatch(raw_expires):
        raise _incomplete("X-Amz-Expires must be a number of seconds.")
    expires = int(raw_expires)
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds.")
    return _AuthParts(
        credential=params["X-Amz-Credential"],
        signed_headers=params["X-Amz-SignedHeaders"],
        signature=params["X-Amz-Signature"],
        timestamp=_parse_stamp(params["X-Amz-Date"]),
        stamp=params["X-Amz-Date"],
        session_token=params.get("X-Amz-Security-Token"),
        expires=expires,
    )


class _Recomputer(SigV4Auth):
    """botocore's signer, restricted to what the client actually signed."""

    def __init__(
        self,
        credentials: Credentials,
        service: str,
        region: str,
        *,
        signed: HeaderSet,
        query: str,
        payload_hash: str,
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed
        self._query = query
        self._payload_hash = payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HeaderSet:
        return self._signed

    def canonical_query_string(self, request: AWSRequest) -> str:
        return self._query

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash

    def _normalize_url_path(self, path: str) -> str:
        # S3 signs the path as sent: object keys may hold "..", "." and "//" (botocore's
        # S3SigV4Auth does the same); every other service signs the normalised path.
        return path if self._service_name == "s3" else super()._normalize_url_path(path)

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        key = _signing_key(
            self.credentials.secret_key,
            request.context["timestamp"][0:8],
            self._region_name,
            self._service_name,
        )
        return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key, which changes only daily per key: worth four HMACs a request."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def verify_request(
    method: str,
    raw_target: str,
    headers: Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]],
    body: bytes | None,
    lookup_secret: SecretLookup,
    *,
    now: dt.datetime | None = None,
    expected_service: str | None = "airflow",
    expected_region: str | None = None,
) -> VerifiedRequest:
    """Verify a SigV4-signed request; raise :class:`SigV4Error` with the AWS code if not valid.

    ``raw_target`` is the request path and query exactly as sent (still percent-encoded);
    ``headers`` must include the ``Host`` the client used (bytes pairs, as ASGI provides them,
    are accepted too). ``lookup_secret(access_key_id, session_token)`` returns the secret key,
    or raises ``SigV4Error`` (UnrecognizedClient / ExpiredToken) for unknown keys and bad
    tokens; returning ``None`` counts as unknown. ``expected_service`` None accepts any service
    in the credential scope (a server that fronts several); for ``s3`` the payload may be one of
    S3's placeholders (unsigned, or aws-chunked frames: see :mod:`iam.sigv4_chunks`).
    """
    moment = now or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    header_map = HeaderSet()
    for name, value in headers:
        header_map.add(_text(name).lower(), _text(value))
    path, _, query = raw_target.partition("?")
    pairs = _split_query(query)

    authorization = header_map.get_all("authorization") or []
    in_query = any(unquote(k) in _QUERY_AUTH for k, _ in pairs)
    if authorization and in_query:
        raise _incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
            "Authorization header should be specified."
        )
    if len(authorization) > 1:
        raise _incomplete("Multiple 'authorization' headers are not allowed.")
    if authorization:
        auth = _header_auth(authorization[0], header_map)
    elif in_query:
        auth = _query_auth(pairs)
    else:
        raise SigV4Error(SigV4Error.MISSING, "Missing Authentication Token")

    scope = auth.credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise _incomplete(
            "Credential must have the form <key>/<YYYYMMDD>/<region>/<service>/aws4_request."
        )
    access_key_id, scope_date, region, service, _ = scope
    if not _ACCESS_KEY.fullmatch(access_key_id):
        raise _incomplete("Credential has a malformed access key id.")
    if not _SCOPE_DATE.fullmatch(scope_date) or not all(
        _SCOPE_NAME.fullmatch(p) for p in (region, service)
    ):
        raise _incomplete("Credential has a malformed scope.")
    if not _SIGNATURE.fullmatch(auth.signature):
        raise _incomplete("Signature must be 64 lowercase hexadecimal characters.")
    names = auth.signed_headers.split(";")
    if not all(_HEADER_NAME.fullmatch(n) for n in names):
        raise _incomplete("SignedHeaders must be lowercase header names separated by ';'.")

    stamp = auth.stamp  # as signed; formatting the parsed time again costs more than a check
    if scope_date != stamp[:8]:
        raise _invalid(f"Date in Credential scope does not match YYYYMMDD from X-Amz-Date: {stamp}")
    if expected_service is not None and service != expected_service:
        raise _invalid(f"Credential should be scoped to correct service: '{expected_service}'.")
    if expected_region is not None and region != expected_region:
        raise _invalid("Credential should be scoped to a valid region.")
    if auth.timestamp - moment > MAX_SKEW:
        raise _invalid(
            f"Signature not yet current: {stamp} is still later than "
            f"{(moment + MAX_SKEW).strftime(_STAMP_FORMAT)}"
        )
    if auth.expires is not None:
        if moment > auth.timestamp + dt.timedelta(seconds=auth.expires):
            raise _invalid(f"Request has expired: signed at {stamp} for {auth.expires} seconds")
    elif moment - auth.timestamp > MAX_SKEW:
        raise _invalid(
            f"Signature expired: {stamp} is now earlier than "
            f"{(moment - MAX_SKEW).strftime(_STAMP_FORMAT)}"
        )

    if "host" not in names:
        raise _invalid("'Host' must be a signed header.")
    signed = HeaderSet()
    for name in names:
        values = header_map.get_all(name)
        if not values:
            raise _invalid(f"Signed header '{name}' is missing from the request.")
        for value in values:
            signed.add(name, value)

    payload_hash = _payload_hash(service, header_map, body, presigned=auth.expires is not None)

    if not path.startswith("/") or "#" in raw_target:
        raise _invalid("The request target is not a valid path.")

    secret = lookup_secret(access_key_id, auth.session_token)
    if not isinstance(secret, str) or not secret:
        raise SigV4Error(
            SigV4Error.UNRECOGNIZED, "The security token included in the request is invalid."
        )

    signer = _Recomputer(
        Credentials(access_key_id, secret, auth.session_token),
        service,
        region,
        signed=signed,
        query=canonical_query_string(pairs, presigned=auth.expires is not None),
        payload_hash=payload_hash,
    )
    request = AWSRequest(method=method.upper(), url=f"https://signed.invalid{path}", data=body)
    request.headers = signed
    request.context["timestamp"] = stamp
    try:
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        expected = signer.signature(string_to_sign, request)
    except (UnicodeError, ValueError):
        raise _invalid(_MISMATCH) from None
    if not hmac.compare_digest(expected, auth.signature):
        raise _invalid(_MISMATCH, detail=f"{canonical}\n---\n{string_to_sign}")
    return VerifiedRequest(
        access_key_id, region, service, auth.session_token, payload_hash, auth.signature, stamp
    )


def _payload_hash(service: str, headers: HeaderSet, body: bytes | None, *, presigned: bool) -> str:
    """The payload line of the canonical request."""
    claims = [c.strip() for c in headers.get_all("x-amz-content-sha256") or []]
    if service == "s3":
        if len(claims) > 1:
            raise _incomplete("Multiple 'x-amz-content-sha256' headers are not allowed.")
        if claims and claims[0] in _S3_PAYLOAD_MODES:
            return claims[0]
        if presigned and not claims:
            return UNSIGNED_PAYLOAD  # a presigned S3 URL never covers the body
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    for claimed in claims:
        if claimed != payload_hash:
            raise _invalid("The provided 'x-amz-content-sha256' header does not match the body.")
    return payload_hash
