"""S3's streaming uploads: an aws-chunked body whose every chunk carries its own signature.

With ``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` the request signature (the
"seed") covers the headers only. Each chunk is framed as ``hex-size;chunk-signature=SIG\\r\\n``
``DATA\\r\\n`` and signed over the previous chunk's signature and the hash of its data, so
chunks can be neither changed, dropped nor reordered. The last chunk is empty. With the
``-TRAILER`` variant, trailing headers follow, signed the same way.
"""

from __future__ import annotations

import hashlib
import hmac

from iam.errors import SigV4Error
from iam.sigv4 import STREAMING_SIGNED, VerifiedRequest, _signing_key

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_MAX_HEADER = 4096


def _bad(message: str) -> SigV4Error:
    return SigV4Error(SigV4Error.INVALID, message)


def verify_chunks(body: bytes, verified: VerifiedRequest, secret: str) -> bytes:
    """Check every chunk signature of a signed streaming body; return the decoded payload.

    ``verified`` is what :func:`iam.sigv4.verify_request` returned for the request (its seed
    signature and scope); ``secret`` the signer's secret key. Raises :class:`SigV4Error`.
    """
    if not verified.payload.startswith(STREAMING_SIGNED):
        raise ValueError("not a signed streaming payload")
    date = verified.timestamp[:8]
    key = _signing_key(secret, date, verified.region, verified.service)
    scope = f"{date}/{verified.region}/{verified.service}/aws4_request"
    previous = verified.signature
    data = bytearray()
    position = 0
    while True:
        end = body.find(b"\r\n", position, position + _MAX_HEADER)
        if end < 0:
            raise _bad("The chunked payload is not framed as aws-chunked.")
        header = body[position:end].decode("latin-1")
        size_text, _, extension = header.partition(";")
        name, _, claimed = extension.partition("=")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _bad("A chunk size is not a hexadecimal number.") from None
        if name != "chunk-signature" or size < 0:
            raise _bad("Every chunk of a signed streaming payload needs its chunk-signature.")
        start = end + 2
        chunk = body[start : start + size]
        if len(chunk) != size:
            raise _bad("The chunked payload ends inside a chunk.")
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                verified.timestamp,
                scope,
                previous,
                _EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            )
        )
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, claimed.strip()):
            raise _bad("The chunk signature we calculated does not match the one you provided.")
        previous = expected
        data += chunk
        position = start + size
        if size == 0:
            break
        if body[position : position + 2] != b"\r\n":
            raise _bad("A chunk is not followed by CRLF.")
        position += 2
    if verified.payload.endswith("-TRAILER"):
        _verify_trailer(body[position:], key, verified.timestamp, scope, previous)
    return bytes(data)


def _verify_trailer(rest: bytes, key: bytes, stamp: str, scope: str, previous: str) -> None:
    text = rest.decode("latin-1").lstrip("\r\n")
    lines = [line for line in text.split("\r\n") if line]
    signature = ""
    trailers = []
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-amz-trailer-signature":
            signature = value.strip()
        else:
            trailers.append(f"{name.strip().lower()}:{value.strip()}\n")
    string_to_sign = "\n".join(
        (
            "AWS4-HMAC-SHA256-TRAILER",
            stamp,
            scope,
            previous,
            hashlib.sha256("".join(trailers).encode()).hexdigest(),
        )
    )
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise _bad("The trailer signature we calculated does not match the one you provided.")
