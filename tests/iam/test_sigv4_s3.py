"""S3's ways of signing: placeholder payloads, signed aws-chunked streams, SigV2 presigned URLs."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from iam.errors import SigV4Error
from iam.sigv2_presign import verify_presigned_v2
from iam.sigv4 import STREAMING_SIGNED, VerifiedRequest, verify_request
from iam.sigv4_chunks import verify_chunks

KEY = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def lookup(access_key_id: str, token: str | None) -> str:
    if access_key_id != KEY[0]:
        raise SigV4Error(SigV4Error.UNRECOGNIZED, "unknown")
    return KEY[1]


def _signed(content_sha: str, body: bytes) -> tuple[str, list[tuple[str, str]]]:
    url = "http://127.0.0.1:4566/bucket/dags/a.py"
    request = AWSRequest(method="PUT", url=url, data=body)
    # What a client configured with payload_signing_enabled=False sends.
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(Credentials(*KEY), "s3", "us-east-1").add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == content_sha
    headers = [(k, v) for k, v in request.headers.items()] + [("host", "127.0.0.1:4566")]
    return "/bucket/dags/a.py", headers


def test_an_unsigned_payload_is_accepted_for_s3_only():
    target, headers = _signed("UNSIGNED-PAYLOAD", b"anything")
    verified = verify_request("PUT", target, headers, b"anything", lookup, expected_service=None)
    assert verified.payload == "UNSIGNED-PAYLOAD"
    with pytest.raises(SigV4Error) as refused:
        verify_request("PUT", target, headers, b"anything", lookup, expected_service="airflow")
    assert refused.value.code == SigV4Error.INVALID


def test_a_placeholder_cannot_stand_in_for_a_changed_signature():
    target, headers = _signed("UNSIGNED-PAYLOAD", b"x")
    changed = [
        (k, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" if k.lower() == "x-amz-content-sha256" else v)
        for k, v in headers
    ]
    with pytest.raises(SigV4Error) as refused:
        verify_request("PUT", target, changed, b"x", lookup, expected_service=None)
    assert refused.value.code == SigV4Error.INVALID


# The example of AWS's "Transferring payload in multiple chunks" page: 66560 bytes of "a" in
# chunks of 65536 and 1024 bytes, signed on 2013-05-24 in us-east-1.
_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
_CHUNKS = (
    (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
    (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
    (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
)
_AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_VERIFIED = VerifiedRequest(
    "AKIAIOSFODNN7EXAMPLE",
    "us-east-1",
    "s3",
    None,
    STREAMING_SIGNED,
    _SEED,
    "20130524T000000Z",
)


def _stream(chunks=_CHUNKS) -> bytes:
    return b"".join(
        f"{size:x};chunk-signature={signature}\r\n".encode() + b"a" * size + b"\r\n"
        for size, signature in chunks
    )


def test_aws_example_of_a_signed_stream_verifies():
    assert verify_chunks(_stream(), _VERIFIED, _AWS_EXAMPLE_SECRET) == b"a" * 66560


@pytest.mark.parametrize(
    "body",
    [
        _stream().replace(b"aaaa", b"aaab", 1),  # a changed byte
        _stream(_CHUNKS[1:]),  # a dropped chunk
        _stream((_CHUNKS[1], _CHUNKS[0], _CHUNKS[2])),  # reordered
        _stream(_CHUNKS[:2]),  # the final chunk missing
    ],
    ids=["changed", "dropped", "reordered", "truncated"],
)
def test_a_tampered_stream_is_refused(body: bytes):
    with pytest.raises(SigV4Error):
        verify_chunks(body, _VERIFIED, _AWS_EXAMPLE_SECRET)


def test_a_stream_signed_with_another_seed_is_refused():
    other = dataclasses.replace(_VERIFIED, signature="0" * 64)
    with pytest.raises(SigV4Error):
        verify_chunks(_stream(), other, _AWS_EXAMPLE_SECRET)


def _presigned_v2(secret: str, expires: int = 300) -> str:
    request = AWSRequest(method="GET", url="http://127.0.0.1:4566/bucket/dags/a.py?versionId=3")
    HmacV1QueryAuth(Credentials(KEY[0], secret), expires=expires).add_auth(request)
    return request.url.split("4566", 1)[1]


def test_sigv2_presigned_urls():
    verified = verify_presigned_v2("GET", _presigned_v2(KEY[1]), lookup)
    assert (verified.access_key_id, verified.service) == (KEY[0], "s3")
    with pytest.raises(SigV4Error) as wrong:
        verify_presigned_v2("GET", _presigned_v2("another-secret"), lookup)
    assert wrong.value.code == SigV4Error.INVALID
    with pytest.raises(SigV4Error) as put:
        verify_presigned_v2("PUT", _presigned_v2(KEY[1]), lookup)
    assert put.value.code == SigV4Error.INVALID
    later = dt.datetime.now(dt.UTC).timestamp() + 3600
    with pytest.raises(SigV4Error, match="expired"):
        verify_presigned_v2("GET", _presigned_v2(KEY[1]), lookup, now=later)
