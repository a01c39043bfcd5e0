"""SigV4 verification against requests signed by botocore (and one independent signer)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from iam.errors import SigV4Error
from iam.sigv4 import canonical_query_string, verify_request

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN"
HOST = "api.airflow.us-east-1.amazonaws.com"
ENV_PATH = "/environments/team-a-env"
INCOMPLETE = "IncompleteSignatureException"
INVALID = "InvalidSignatureException"

Signed = tuple[str, str, list[tuple[str, str]], bytes]


def lookup(access_key_id: str, token: str | None) -> str:
    if access_key_id != AKID:
        raise SigV4Error("UnrecognizedClientException", "unknown key")
    return SECRET


def target_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.netloc, parts.path + (f"?{parts.query}" if parts.query else "")


def sign(
    method: str = "GET",
    path: str = ENV_PATH,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    token: str | None = None,
    service: str = "airflow",
) -> Signed:
    request = AWSRequest(method, f"https://{HOST}{path}", data=body, headers=headers or {})
    SigV4Auth(Credentials(AKID, SECRET, token), service, "us-east-1").add_auth(request)
    host, target = target_of(request.url)
    return method, target, [*request.headers.items(), ("Host", host)], body


def presign(path: str = ENV_PATH, expires: int = 300, token: str | None = None) -> Signed:
    request = AWSRequest("GET", f"https://{HOST}{path}")
    SigV4QueryAuth(Credentials(AKID, SECRET, token), "airflow", "us-east-1", expires).add_auth(
        request
    )
    host, target = target_of(request.url)
    return "GET", target, [("Host", host)], b""


def verify(signed: Signed, **kwargs: Any) -> Any:
    method, target, headers, body = signed
    return verify_request(method, target, headers, body, lookup, **kwargs)


def code_of(signed: Signed, **kwargs: Any) -> str:
    with pytest.raises(SigV4Error) as info:
        verify(signed, **kwargs)
    assert SECRET not in str(info.value) and SECRET not in (info.value.detail or "")
    return info.value.code


def replace_header(signed: Signed, name: str, value: str | None) -> Signed:
    method, target, headers, body = signed
    kept = [(k, v) for k, v in headers if k.lower() != name.lower()]
    if value is not None:
        kept.append((name, value))
    return method, target, kept, body


def authorization(signed: Signed) -> str:
    return next(v for k, v in signed[2] if k.lower() == "authorization")


# --- accepted requests -------------------------------------------------------------------------


def test_header_auth_get() -> None:
    verified = verify(sign())
    assert (verified.access_key_id, verified.region, verified.service) == (
        AKID,
        "us-east-1",
        "airflow",
    )
    assert verified.session_token is None


def test_header_auth_post_with_body_and_session_token() -> None:
    signed = sign(
        "POST",
        "/tags/arn%3Aaws%3Aairflow%3Aus-east-1%3A111122223333%3Aenvironment%2Fteam-a-env",
        b'{"Tags": {"team": "a"}}',
        {"Content-Type": "application/json"},
        token=TOKEN,
    )
    assert verify(signed).session_token == TOKEN


def test_repeated_query_keys_and_encoded_values() -> None:
    verify(sign("DELETE", "/tags/arn%3Aaws%3Ax?tagKeys=b&tagKeys=a&tagKeys=a%20b"))


def test_unsigned_extra_headers_are_ignored() -> None:
    method, target, headers, body = sign()
    verify((method, target, [*headers, ("User-Agent", "x"), ("Content-Length", "0")], body))


def test_presigned() -> None:
    assert verify(presign()).access_key_id == AKID
    assert verify(presign(token=TOKEN)).session_token == TOKEN


def test_expected_region() -> None:
    verify(sign(), expected_region="us-east-1")
    assert code_of(sign(), expected_region="eu-west-1") == INVALID


def test_content_sha256_header_checked_when_present() -> None:
    body = b'{"x": 1}'
    good = hashlib.sha256(body).hexdigest()
    verify(sign("POST", body=body, headers={"X-Amz-Content-SHA256": good}))
    wrong = replace_header(sign("POST", body=body), "X-Amz-Content-SHA256", "0" * 64)
    assert code_of(wrong) == INVALID


def test_known_answer_get_vanilla() -> None:
    headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
    ]
    verified = verify_request(
        "GET",
        "/",
        headers,
        b"",
        lambda _a, _t: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        now=dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC),
        expected_service="service",
    )
    assert verified.access_key_id == "AKIDEXAMPLE"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def test_date_header_with_independent_signer() -> None:
    date = "Sun, 30 Aug 2015 12:36:00 GMT"
    canonical = "\n".join(
        [
            "GET",
            "/",
            "",
            f"date:{date}",
            "host:example.amazonaws.com",
            "",
            "date;host",
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    scope = "20150830/us-east-1/service/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            "20150830T123600Z",
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{SECRET}".encode(), "20150830")
    for part in ("us-east-1", "service", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = [
        ("Host", "example.amazonaws.com"),
        ("Date", date),
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders=date;host, "
            f"Signature={signature}",
        ),
    ]
    verify_request(
        "GET",
        "/",
        headers,
        b"",
        lookup,
        now=dt.datetime(2015, 8, 30, 12, 40, tzinfo=dt.UTC),
        expected_service="service",
    )


def test_canonical_query_string() -> None:
    pairs = [("b", "2"), ("a", "x%2Fy"), ("a", "1"), ("c", ""), ("X-Amz-Signature", "s")]
    assert canonical_query_string(pairs, presigned=True) == "a=1&a=x%2Fy&b=2&c="
    assert "X-Amz-Signature=s" in canonical_query_string(pairs, presigned=False)


# --- a real botocore mwaa client ---------------------------------------------------------------


class _Captured(Exception):
    pass


def _client_requests(
    calls: list[Callable[[Any], Any]], inject_host_prefix: bool = True
) -> list[Any]:
    session = botocore.session.get_session()
    client = session.create_client(
        "mwaa",
        region_name="us-east-1",
        endpoint_url="https://mwaa.internal",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
        config=Config(inject_host_prefix=inject_host_prefix, retries={"max_attempts": 1}),
    )
    captured = []

    def grab(request: Any, **_kwargs: Any) -> None:
        captured.append(request)
        raise _Captured

    client.meta.events.register("before-send", grab)
    for call in calls:
        with pytest.raises(_Captured):
            call(client)
    return captured


@pytest.mark.parametrize("inject_host_prefix", [True, False])
def test_real_mwaa_client_requests_verify(inject_host_prefix: bool) -> None:
    arn = "arn:aws:airflow:us-east-1:111122223333:environment/team-a-env"
    requests = _client_requests(
        [
            lambda c: c.get_environment(Name="team-a-env"),
            lambda c: c.list_environments(),
            lambda c: c.tag_resource(ResourceArn=arn, Tags={"team": "a"}),
            lambda c: c.untag_resource(ResourceArn=arn, tagKeys=["team", "cost center"]),
            lambda c: c.create_cli_token(Name="team-a-env"),
        ],
        inject_host_prefix,
    )
    for prepared in requests:
        host, target = target_of(prepared.url)
        headers = [*prepared.headers.items(), ("Host", host)]
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        verified = verify_request(prepared.method, target, headers, body, lookup)
        assert verified.session_token == TOKEN
        tampered = target.replace("team", "tean") if "team" in target else target + "x"
        with pytest.raises(SigV4Error) as info:
            verify_request(prepared.method, tampered, headers, body, lookup)
        assert info.value.code == INVALID


# --- rejected requests -------------------------------------------------------------------------


def test_missing_authentication() -> None:
    assert (
        code_of(("GET", ENV_PATH, [("Host", HOST)], b"")) == "MissingAuthenticationTokenException"
    )


def test_tampered_body_path_query_and_header() -> None:
    method, target, headers, _ = sign(
        "POST", body=b"{}", headers={"Content-Type": "application/json"}
    )
    assert code_of((method, target, headers, b'{"a":1}')) == INVALID
    assert code_of((method, target + "x", headers, b"{}")) == INVALID
    assert code_of((method, target + "?extra=1", headers, b"{}")) == INVALID
    assert code_of(("PUT", target, headers, b"{}")) == INVALID
    changed = replace_header((method, target, headers, b"{}"), "Content-Type", "text/plain")
    assert code_of(changed) == INVALID
    other_host = replace_header((method, target, headers, b"{}"), "Host", "evil.example.com")
    assert code_of(other_host) == INVALID


def test_wrong_secret() -> None:
    method, target, headers, body = sign()
    with pytest.raises(SigV4Error) as info:
        verify_request(method, target, headers, body, lambda _a, _t: "other-secret")
    assert info.value.code == INVALID


@pytest.mark.parametrize(("minutes", "ok"), [(14, True), (-14, True), (16, False), (-16, False)])
def test_clock_skew(minutes: int, ok: bool) -> None:
    signed = sign()
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    if ok:
        verify(signed, now=now)
    else:
        assert code_of(signed, now=now) == INVALID


def test_naive_now_is_utc() -> None:
    verify(sign(), now=dt.datetime.now(dt.UTC).replace(tzinfo=None))


def test_presigned_expiry_and_limits() -> None:
    signed = presign(expires=60)
    assert code_of(signed, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)) == INVALID
    assert code_of(signed, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)) == INVALID
    week = presign(expires=604_800)
    verify(week, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=6))
    method, target, headers, body = presign()
    too_long = target.replace("X-Amz-Expires=300", "X-Amz-Expires=604801")
    assert code_of((method, too_long, headers, body)) == INCOMPLETE
    garbage = target.replace("X-Amz-Expires=300", "X-Amz-Expires=soon")
    assert code_of((method, garbage, headers, body)) == INCOMPLETE


def test_presigned_tampered_path() -> None:
    method, target, headers, body = presign()
    assert code_of((method, target.replace("team-a", "team-b"), headers, body)) == INVALID


def test_header_and_query_auth_together() -> None:
    method, target, headers, body = presign()
    header_signed = sign()
    both = [*headers, ("Authorization", authorization(header_signed))]
    assert code_of((method, target, both, body)) == INCOMPLETE


def test_scope_date_mismatch() -> None:
    signed = sign()
    auth = authorization(signed)
    day = auth.split("Credential=")[1].split("/")[1]
    wrong = auth.replace(f"/{day}/", "/20200101/")
    assert code_of(replace_header(signed, "Authorization", wrong)) == INVALID


def test_wrong_service_in_scope() -> None:
    assert code_of(sign(service="s3")) == INVALID


def test_host_must_be_signed() -> None:
    signed = sign()
    auth = authorization(signed).replace(
        "SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date"
    )
    with pytest.raises(SigV4Error) as info:
        verify(replace_header(signed, "Authorization", auth))
    assert info.value.code == INVALID
    assert "Host" in info.value.message


def test_signed_header_missing_from_request() -> None:
    signed = sign(token=TOKEN)
    assert code_of(replace_header(signed, "X-Amz-Security-Token", None)) == INVALID


def test_unknown_key_propagates_lookup_error() -> None:
    signed = sign()
    auth = authorization(signed).replace(AKID, "AKIAUNKNOWNKEY000000")
    assert code_of(replace_header(signed, "Authorization", auth)) == "UnrecognizedClientException"


def test_lookup_returning_none_is_unrecognized() -> None:
    method, target, headers, body = sign()
    with pytest.raises(SigV4Error) as info:
        verify_request(method, target, headers, body, lambda _a, _t: None)  # type: ignore[arg-type,return-value]
    assert info.value.code == "UnrecognizedClientException"


def test_duplicate_authorization_headers() -> None:
    method, target, headers, body = sign()
    twice = [*headers, ("Authorization", authorization(sign()))]
    assert code_of((method, target, twice, body)) == INCOMPLETE


VALID_DATE = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
SCOPE = f"{AKID}/{VALID_DATE[:8]}/us-east-1/airflow/aws4_request"


@pytest.mark.parametrize(
    ("value", "with_date"),
    [
        ("", True),
        ("Bearer abc", True),
        ("AWS4-HMAC-SHA256", True),
        ("AWS4-HMAC-SHA256 ", True),
        ("AWS4-HMAC-SHA256 Credential=", True),
        ("AWS4-HMAC-SHA256 Credential=x", True),
        ("AWS4-HMAC-SHA256 garbage", True),
        ("AWS4-HMAC-SHA256 ,,,,", True),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host", True),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature=abc", True),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=HOST, Signature={'0' * 64}", True),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host;;x, Signature={'0' * 64}", True),
        (f"AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature={'0' * 64}", True),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}/x, SignedHeaders=host, Signature={'0' * 64}", True),
        (f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host, Signature={'0' * 64}", False),
        (
            f"AWS4-HMAC-SHA256 Credential={SCOPE}, Credential={SCOPE}, SignedHeaders=host, "
            "Signature=0",
            True,
        ),
        (
            "AWS4-HMAC-SHA256 Credential=\u00e9\u00e9/\u2603, SignedHeaders=\x00, Signature=\udcff",
            True,
        ),
        ("AWS4-HMAC-SHA256 " + "Credential=x, " * 10_000, True),
    ],
)
def test_garbage_authorization_is_incomplete(value: str, with_date: bool) -> None:
    headers = [("Host", HOST), ("Authorization", value)]
    if with_date:
        headers.append(("X-Amz-Date", VALID_DATE))
    assert code_of(("GET", "/", headers, b"")) == INCOMPLETE


@pytest.mark.parametrize("date", ["", "yesterday", "20261301T000000Z", "2026-01-01T00:00:00Z"])
def test_garbage_dates_are_incomplete(date: str) -> None:
    signed = replace_header(sign(), "X-Amz-Date", date)
    assert code_of(signed) == INCOMPLETE


def test_fuzzed_requests_raise_only_sigv4_errors() -> None:
    rng = random.Random(7)
    alphabet = (
        "AWS4-HMAC-SHA256 Credential=/,;=SignedHeaders Signature host x-amz-date 0af%?&\u00e9"
    )
    base = sign(token=TOKEN)
    for _ in range(2000):
        method, target, headers, body = base
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        choice = rng.randint(0, 3)
        if choice == 0:
            headers = [(k, junk if k == "Authorization" else v) for k, v in headers]
        elif choice == 1:
            target = "/" + junk
            headers = [(k, v) for k, v in headers if k != "Authorization"]
        elif choice == 2:
            target = target + "?" + junk
        else:
            headers = [(k, junk if k == "X-Amz-Date" else v) for k, v in headers]
        try:
            verify((method, target, headers, body))
        except SigV4Error as exc:
            assert exc.code in {
                "MissingAuthenticationTokenException",
                INCOMPLETE,
                INVALID,
                "UnrecognizedClientException",
            }


def test_non_ascii_digits_are_rejected() -> None:
    method, target, headers, body = presign()
    superscript = target.replace("X-Amz-Expires=300", "X-Amz-Expires=%C2%B2")
    assert code_of((method, superscript, headers, body)) == INCOMPLETE
    arabic = VALID_DATE.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert code_of(replace_header(sign(), "X-Amz-Date", arabic)) == INCOMPLETE


def test_bytes_headers_as_asgi_provides_them() -> None:
    method, target, headers, body = sign()
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    assert verify_request(method, target, raw, body, lookup).access_key_id == AKID
