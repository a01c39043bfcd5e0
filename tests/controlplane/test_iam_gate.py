"""The IamGatekeeper on real Starlette requests signed by botocore (no server, no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request

from controlplane.credentials import KeyPair
from controlplane.errors import InvalidSignatureException
from controlplane.iam_config import DirectorySource
from controlplane.iam_gate import IamGatekeeper, raw_target
from controlplane.security import Intent
from environments.errors import AccessDeniedException
from environments.naming import Placement

ACCOUNT = "123456789012"
ADMIN = KeyPair("AKIAADMIN00000000001", "admin-secret")
PLACE = Placement(account_id=ACCOUNT, region="us-east-1")
ENV = PLACE.environment_arn("e1")
CONFIG = """
policies:
  FromTenSlashEight:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: airflow:GetEnvironment
        Resource: "*"
        Condition: {IpAddress: {aws:SourceIp: 10.0.0.0/8}}
  TeamOnly:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Action: airflow:GetEnvironment
        Resource: "*"
        Condition: {StringEquals: {aws:ResourceTag/team: "${aws:PrincipalTag/team}"}}
      - Effect: Deny
        Action: "*"
        Resource: "*"
        Condition: {Bool: {aws:SecureTransport: "false"}, StringEquals: {aws:username: tls}}
      - Effect: Allow
        Action: airflow:CreateWebLoginToken
        Resource: ["arn:aws:airflow:*:*:role/*/Op", "arn:aws:airflow:*:*:role/*/Viewer"]
        Condition: {StringEquals: {aws:ResourceTag/team: "${aws:PrincipalTag/team}"}}
users:
  ip:
    policies: [FromTenSlashEight]
    access_keys: [{access_key_id: AKIAIPUSER0000000001, secret_access_key: ip-secret}]
  team:
    tags: {team: a}
    policies: [TeamOnly]
    access_keys: [{access_key_id: AKIATEAMUSER00000001, secret_access_key: team-secret}]
  tls:
    tags: {team: a}
    policies: [TeamOnly]
    access_keys: [{access_key_id: AKIATLSUSER000000001, secret_access_key: tls-secret}]
"""
KEYS = {
    "admin": (ADMIN.access_key_id, ADMIN.secret_access_key),
    "ip": ("AKIAIPUSER0000000001", "ip-secret"),
    "team": ("AKIATEAMUSER00000001", "team-secret"),
    "tls": ("AKIATLSUSER000000001", "tls-secret"),
}


@pytest.fixture
def gate(tmp_path: Path) -> IamGatekeeper:
    path = tmp_path / "iam.yaml"
    path.write_text(CONFIG)
    source = DirectorySource(path=path, account_id=ACCOUNT, admin=ADMIN)
    tags = {"e1": {"team": "a"}, "e2": {"team": "b"}}
    return IamGatekeeper(source, PLACE, tags.get)


def _request(
    who: str,
    method: str = "GET",
    target: str = "/environments/e1",
    *,
    body: bytes = b"",
    client: str = "10.1.2.3",
    scheme: str = "http",
    secret: str | None = None,
) -> Request:
    host = "127.0.0.1:8080"
    key, real_secret = KEYS[who]
    signed = AWSRequest(method=method, url=f"http://{host}{target}", data=body)
    SigV4Auth(Credentials(key, secret or real_secret), "airflow", "us-east-1").add_auth(signed)
    headers = [(b"host", host.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in signed.headers.items()]
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "client": (client, 50000),
        "server": ("127.0.0.1", 8080),
    }
    return Request(scope)


def _never() -> dict:
    raise AssertionError("resource tags were fetched although no policy reads them")


def test_admin_is_authenticated_and_allowed_without_reading_tags(gate):
    request = _request("admin")
    caller = gate.authenticate(request, b"")
    assert caller.arn == f"arn:aws:iam::{ACCOUNT}:user/airdock-admin"
    assert caller.iam_identity == "user/airdock-admin"
    gate.authorize(request, caller, Intent("airflow:DeleteEnvironment", ENV, resource_tags=_never))
    assert gate.airflow_role(request, caller, "e1", "airflow:CreateWebLoginToken") == "Admin"


def test_signature_failures_carry_the_aws_code(gate):
    with pytest.raises(InvalidSignatureException) as info:
        gate.authenticate(_request("team", secret="wrong"), b"")
    assert info.value.code == "InvalidSignatureException" and info.value.status == 403
    request = _request("team", method="PUT", body=b'{"a": 1}')
    with pytest.raises(InvalidSignatureException) as info:
        gate.authenticate(request, b'{"a": 2}')
    assert info.value.code == "InvalidSignatureException" and info.value.status == 403
    assert gate.authenticate(request, b'{"a": 1}').arn.endswith(":user/team")


def test_raw_target_keeps_the_encoding_of_the_wire():
    scope = {"raw_path": b"/tags/arn%3Aaws%3Aairflow", "query_string": b"tagKeys=a&tagKeys=b"}
    assert raw_target(scope) == "/tags/arn%3Aaws%3Aairflow?tagKeys=a&tagKeys=b"
    assert raw_target({"raw_path": b"/environments", "query_string": b""}) == "/environments"


def test_encoded_arn_target_verifies(gate):
    arn = "arn%3Aaws%3Aairflow%3Aus-east-1%3A123456789012%3Aenvironment%2Fe1"
    request = _request("admin", "DELETE", f"/tags/{arn}?tagKeys=a&tagKeys=b")
    assert gate.authenticate(request, b"").arn.endswith(":user/airdock-admin")


def test_source_ip_is_the_client_address(gate):
    inside = _request("ip", client="10.9.9.9")
    gate.authorize(inside, gate.authenticate(inside, b""), Intent("airflow:GetEnvironment", ENV))
    outside = _request("ip", client="192.168.1.1")
    caller = gate.authenticate(outside, b"")
    with pytest.raises(AccessDeniedException) as info:
        gate.authorize(outside, caller, Intent("airflow:GetEnvironment", ENV))
    assert info.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/ip is not authorized to perform: "
        f"airflow:GetEnvironment on resource: {ENV} because no identity-based policy allows "
        "the airflow:GetEnvironment action"
    )


def test_resource_tags_are_fetched_lazily_and_used(gate):
    fetched = []

    def tags(team: str):
        return lambda: fetched.append(team) or {"team": team}

    request = _request("team")
    caller = gate.authenticate(request, b"")
    gate.authorize(request, caller, Intent("airflow:GetEnvironment", ENV, resource_tags=tags("a")))
    with pytest.raises(AccessDeniedException):
        gate.authorize(
            request, caller, Intent("airflow:GetEnvironment", ENV, resource_tags=tags("b"))
        )
    assert fetched == ["a", "b"]


def test_secure_transport_is_false_over_http(gate):
    intent = Intent("airflow:GetEnvironment", ENV, resource_tags=lambda: {"team": "a"})
    plain = _request("tls")
    with pytest.raises(AccessDeniedException, match="explicit deny"):
        gate.authorize(plain, gate.authenticate(plain, b""), intent)
    tls = _request("tls", scheme="https")
    gate.authorize(tls, gate.authenticate(tls, b""), intent)


def test_airflow_role_is_the_highest_allowed(gate):
    request = _request("team")
    caller = gate.authenticate(request, b"")
    assert gate.airflow_role(request, caller, "e1", "airflow:CreateWebLoginToken") == "Op"
    with pytest.raises(AccessDeniedException) as info:
        gate.airflow_role(request, caller, "e2", "airflow:CreateWebLoginToken")
    role = PLACE.rbac_role_arn("e2", "Admin")
    assert f"airflow:CreateWebLoginToken on resource: {role}" in info.value.message


def test_pass_role_is_checked_with_the_service_it_goes_to(gate):
    request = _request("team")
    caller = gate.authenticate(request, b"")
    passing = Intent(
        "iam:PassRole",
        f"arn:aws:iam::{ACCOUNT}:role/r",
        context={"iam:PassedToService": "airflow.amazonaws.com"},
    )
    intent = Intent(
        "airflow:GetEnvironment", ENV, resource_tags=lambda: {"team": "a"}, also=(passing,)
    )
    with pytest.raises(AccessDeniedException, match=r"iam:PassRole on resource: .*role/r"):
        gate.authorize(request, caller, intent)


def test_debug_detail_never_shows_a_session_token():
    from controlplane.iam_gate import _redact

    detail = "GET\n/x\nA=1&X-Amz-Security-Token=SeCrEt%2F&B=2\nx-amz-security-token:SeCrEt\n"
    redacted = _redact(detail)
    assert "SeCrEt" not in redacted and redacted.count("<redacted>") == 2
