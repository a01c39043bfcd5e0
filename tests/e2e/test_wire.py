"""Raw HTTP against a live server: what botocore would never send, and host prefixes."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import create_params
from tests.e2e.iam_support import SignedAuth


@pytest.fixture
def http(server):
    # Every MWAA call must be SigV4-signed; sign as the admin, so only the wire is under test.
    with httpx.Client(
        base_url=server.url, timeout=10, auth=SignedAuth(server.admin_key())
    ) as client:
        yield client


def _assert_aws_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["x-amzn-ErrorType"] == code
    assert response.headers.get("x-amzn-RequestId")
    return response.json()


def test_malformed_json_is_a_4xx(http, env_name):
    response = http.put(f"/environments/{env_name}", content=b"{not json")
    _assert_aws_error(response, 400, "SerializationException")
    response = http.put(f"/environments/{env_name}", content=b"[1, 2]")
    _assert_aws_error(response, 400, "SerializationException")
    assert http.get(f"/environments/{env_name}").status_code == 404


def test_unknown_members_and_wrong_types_are_named(http, env_name):
    body = create_params(Surprise=1)
    response = http.put(f"/environments/{env_name}", json=body)
    assert "Surprise" in _assert_aws_error(response, 400, "ValidationException")["message"]
    body = create_params(MaxWorkers="5")
    response = http.put(f"/environments/{env_name}", json=body)
    assert "MaxWorkers" in _assert_aws_error(response, 400, "ValidationException")["message"]
    body = create_params(NetworkConfiguration={"SubnetIds": "subnet-1"})
    response = http.put(f"/environments/{env_name}", json=body)
    _assert_aws_error(response, 400, "ValidationException")
    assert http.get(f"/environments/{env_name}").status_code == 404


def test_body_over_one_mib_is_refused(http, env_name):
    body = json.dumps(create_params(AirflowConfigurationOptions={"core.x": "a" * (1 << 20)}))
    response = http.put(f"/environments/{env_name}", content=body)
    _assert_aws_error(response, 413, "RequestEntityTooLargeException")


def test_sensitive_values_are_not_echoed(http, env_name):
    body = create_params(AirflowConfigurationOptions={"core.secret": "\u00e9not-ascii-secret"})
    response = http.put(f"/environments/{env_name}", json=body)
    payload = _assert_aws_error(response, 400, "ValidationException")
    assert "not-ascii-secret" not in payload["message"]


@pytest.mark.parametrize("prefix", ["api.", "env.", "ops."])
def test_host_prefixes_are_accepted(http, prefix):
    response = http.get("/environments", headers={"Host": f"{prefix}airdock.internal"})
    assert response.status_code == 200
    assert "Environments" in response.json()


def test_unknown_operation_is_aws_shaped(http):
    _assert_aws_error(http.get("/nothing-here"), 404, "UnknownOperationException")
    _assert_aws_error(http.post("/environments"), 404, "UnknownOperationException")


def test_health(http):
    health = http.get("/_airdock/health").json()
    assert health["status"] == "ok"
    assert {"embedded_aws", "background", "api-1"} <= set(health["parts"])
    assert all(part["state"] == "up" for part in health["parts"].values())


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deeply_nested_json_is_a_validation_error(http, env_name, depth):
    nested = "[" * depth + "]" * depth
    body = f'{{"Name": "{env_name}", "AirflowConfigurationOptions": {nested}}}'
    response = http.put(f"/environments/{env_name}", content=body)
    assert "deeper than 64" in _assert_aws_error(response, 400, "ValidationException")["message"]
    assert http.get(f"/environments/{env_name}").status_code == 404
