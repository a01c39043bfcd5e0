"""SigV4 authentication against a live server: every failure is the code botocore expects,
HTTP 403, and changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError

from controlplane.keystore import KeyStore, MintedKey
from environments.store import Store
from tests.e2e.iam_support import ROLE_KEY, USER_KEYS, airdock, presign, sign, unique

pytest_plugins = ["tests.e2e.iam_fixtures"]  # the iam_server and team_params fixtures

ALICE = USER_KEYS["alice"]


def _code(call) -> str:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return info.value.response["Error"]["Code"]


def _assert_refused(response: httpx.Response, code: str) -> dict:
    assert response.status_code == 403, response.text
    assert response.headers["x-amzn-ErrorType"] == code
    return response.json()


def _absent(iam_server, name: str) -> None:
    admin = iam_server.admin()
    with pytest.raises(admin.exceptions.ResourceNotFoundException):
        admin.get_environment(Name=name)


def test_unsigned_requests_are_refused_and_change_nothing(iam_server, team_params):
    name = unique("unsigned")
    with httpx.Client(base_url=iam_server.live.url, timeout=10) as http:
        body = _assert_refused(http.get("/environments"), "MissingAuthenticationTokenException")
        assert body["message"] == "Missing Authentication Token"
        created = http.put(f"/environments/{name}", json=team_params(Tags={"team": "a"}))
        _assert_refused(created, "MissingAuthenticationTokenException")
        assert http.get("/_airdock/health").status_code == 200  # not an MWAA call
    _absent(iam_server, name)


def test_unknown_key_and_wrong_secret(iam_server, team_params):
    unknown = iam_server.client(("AKIANOBODY0000000000", "secret"))
    assert _code(unknown.list_environments) == "UnrecognizedClientException"
    wrong = iam_server.client((ALICE[0], "not-the-secret"))
    assert _code(wrong.list_environments) == "InvalidSignatureException"
    name = unique("wrong-secret")
    create = lambda: wrong.create_environment(Name=name, **team_params(Tags={"team": "a"}))  # noqa: E731
    assert _code(create) == "InvalidSignatureException"
    _absent(iam_server, name)


def test_tampered_body_is_refused(iam_server, team_params):
    name = unique("tampered")
    url = f"{iam_server.live.url}/environments/{name}"
    signed_body = json.dumps(team_params(Tags={"team": "a"})).encode()
    content_type = {"Content-Type": "application/json"}
    headers = sign("PUT", url, ALICE, body=signed_body, headers=content_type)
    sent = json.dumps(team_params(Tags={"team": "a"}, MaxWorkers=20)).encode()
    response = httpx.put(url, content=sent, headers=headers, timeout=10)
    _assert_refused(response, "InvalidSignatureException")
    _absent(iam_server, name)
    # The same headers with the body that was signed do work: the refusal was the body.
    response = httpx.put(url, content=signed_body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("minutes", [-16, 16])
def test_clock_skew_beyond_15_minutes_is_refused(iam_server, minutes):
    url = f"{iam_server.live.url}/environments"
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    response = httpx.get(url, headers=sign("GET", url, ALICE, when=when), timeout=10)
    _assert_refused(response, "InvalidSignatureException")
    near = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes * 13 // 16)
    assert httpx.get(url, headers=sign("GET", url, ALICE, when=near), timeout=10).is_success


def test_credential_scope_must_name_this_region(iam_server):
    url = f"{iam_server.live.url}/environments"
    response = httpx.get(url, headers=sign("GET", url, ALICE, region="eu-west-1"), timeout=10)
    _assert_refused(response, "InvalidSignatureException")


def test_malformed_authorization_is_incomplete(iam_server):
    url = f"{iam_server.live.url}/environments"
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20260101", "X-Amz-Date": "x"}
    _assert_refused(httpx.get(url, headers=headers), "IncompleteSignatureException")


def test_encoded_arn_in_path_verifies(iam_server, team_params):
    """/tags/{arn} carries the ARN percent-encoded; the signature covers it as sent."""
    alice = iam_server.user("alice")
    name = unique("a-tags")
    arn = alice.create_environment(Name=name, **team_params(Tags={"team": "a"}))["Arn"]
    assert alice.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "a"}
    url = f"{iam_server.live.url}/tags/{quote(arn, safe='')}?tagKeys=x&tagKeys=y"
    response = httpx.delete(url, headers=sign("DELETE", url, ALICE), timeout=10)
    assert response.status_code == 200, response.text


def test_presigned_url_works(iam_server):
    url = presign(f"{iam_server.live.url}/environments", ALICE)
    assert "X-Amz-Signature=" in url
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert "Environments" in response.json()
    longer = url.replace("X-Amz-Expires=300", "X-Amz-Expires=600")
    _assert_refused(httpx.get(longer, timeout=10), "InvalidSignatureException")
    expiring = presign(f"{iam_server.live.url}/environments", ALICE, expires=1)
    # Not a wait for the server: the URL's own one second of validity has to run out.
    time.sleep(2.1)
    _assert_refused(httpx.get(expiring, timeout=10), "InvalidSignatureException")


def test_role_key_from_the_config_acts_as_a_session(iam_server, team_params):
    deployer = iam_server.client(ROLE_KEY)
    name = unique("a-ci")
    deployer.create_environment(Name=name, **team_params(Tags={"team": "a"}))
    assert iam_server.user("alice").get_environment(Name=name)["Environment"]["Name"] == name
    with pytest.raises(ClientError) as info:
        deployer.create_environment(Name=unique("b-ci"), **team_params(Tags={"team": "b"}))
    message = info.value.response["Error"]["Message"]
    assert message.startswith(
        "User: arn:aws:sts::123456789012:assumed-role/team-a-deployer/ci is not authorized"
    )


def test_session_token_credentials(iam_server):
    minted = airdock(
        "iam",
        "create-role-session",
        "team-a-deployer",
        "--session-name",
        "pipeline",
        "--data-dir",
        str(iam_server.live.data_dir),
    )
    credentials = json.loads(minted.stdout)["Credentials"]
    key = (credentials["AccessKeyId"], credentials["SecretAccessKey"])
    assert key[0].startswith("ASIA")
    session = iam_server.client(key, token=credentials["SessionToken"])
    assert "Environments" in session.list_environments()
    without = iam_server.client(key)
    assert _code(without.list_environments) == "UnrecognizedClientException"
    other = iam_server.client(key, token=credentials["SessionToken"][:-4] + "AAAA")
    assert _code(other.list_environments) == "UnrecognizedClientException"


def test_expired_session_token(iam_server):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    stamp = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    key = MintedKey(
        access_key_id="ASIAEXPIREDTEST00001",
        secret_access_key="expired-secret",
        created=stamp(past),
        role="team-a-deployer",
        session_name="old",
        session_token="old-token",
        expires=stamp(past + dt.timedelta(hours=1)),
    )
    data_dir = iam_server.live.data_dir
    KeyStore(data_dir, Store(f"sqlite:///{data_dir / 'airdock.db'}")).add(key)
    client = iam_server.client((key.access_key_id, key.secret_access_key), token="old-token")
    assert _code(client.list_environments) == "ExpiredTokenException"


def test_secrets_never_reach_the_log(iam_server):
    # Fail first, so the log has something to say.
    with pytest.raises(ClientError):
        iam_server.client((ALICE[0], "wrong")).list_environments()
    text = iam_server.log_text()
    assert "authentication failed" in text
    secrets = [s for _, s in USER_KEYS.values()] + [ROLE_KEY[1], iam_server.live.admin_key()[1]]
    for secret in secrets:
        assert secret not in text
