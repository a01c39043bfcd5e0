"""Verification of S3's legacy presigned URLs (Signature Version 2 in the query string).

boto3 still presigns S3 URLs this way in us-east-1 unless told otherwise:
``?AWSAccessKeyId=...&Expires=...&Signature=...``. The string to sign is rebuilt with botocore's
own HMAC-v1 rules (the headers a presigner signs travel in the query string), so it matches
what the SDKs sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import HmacV1Auth
from botocore.credentials import Credentials

from iam.errors import SigV4Error
from iam.sigv4 import UNSIGNED_PAYLOAD, SecretLookup, VerifiedRequest

_AUTH = ("AWSAccessKeyId", "Signature", "Expires")


def is_presigned_v2(query: Mapping[str, str]) -> bool:
    return all(name in query for name in _AUTH)


class _AtExpiry(HmacV1Auth):
    """HMAC-v1 whose Date line is the URL's Expires, as the presigner wrote it."""

    def __init__(self, credentials: Credentials, expires: str) -> None:
        super().__init__(credentials)
        self._expires = expires

    def _get_date(self) -> str:
        return self._expires


def verify_presigned_v2(
    method: str, raw_target: str, lookup_secret: SecretLookup, *, now: float | None = None
) -> VerifiedRequest:
    """Verify an S3 URL presigned with SigV2; raise :class:`SigV4Error` (same codes) if not."""
    params = dict(parse_qsl(raw_target.partition("?")[2], keep_blank_values=True))
    if not is_presigned_v2(params) or not params["Expires"].isdigit():
        raise SigV4Error(SigV4Error.INCOMPLETE, "Query-string authentication is incomplete.")
    if (now or time.time()) > int(params["Expires"]):
        raise SigV4Error(SigV4Error.INVALID, "Request has expired")
    access_key_id = params["AWSAccessKeyId"]
    token = params.get("x-amz-security-token")
    secret = lookup_secret(access_key_id, token)
    if not isinstance(secret, str) or not secret:
        raise SigV4Error(
            SigV4Error.UNRECOGNIZED, "The AWS Access Key Id you provided does not exist."
        )
    headers = {
        name: value
        for name, value in params.items()
        if name.lower().startswith("x-amz-") or name.lower() in ("content-md5", "content-type")
    }
    signer = _AtExpiry(Credentials(access_key_id, secret), params["Expires"])
    string_to_sign = signer.canonical_string(method, urlsplit(raw_target), headers)
    expected = base64.b64encode(
        hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    ).decode()
    if not hmac.compare_digest(expected, params["Signature"]):
        raise SigV4Error(
            SigV4Error.INVALID,
            "The request signature we calculated does not match the signature you provided.",
        )
    return VerifiedRequest(access_key_id, "", "s3", token, UNSIGNED_PAYLOAD)
