"""Helpers for the IAM end-to-end tests: SigV4 signing for raw HTTP, a server started with an
IAM config, and clients for its users.

The fixtures live in tests/e2e/iam_fixtures.py, which test modules load with `pytest_plugins`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import yaml
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from environments.plumbing.files import atomic_write
from tests.conftest import ROOT, TRUST_POLICY, LiveServer, execution_role_policy, start_server

REGION = "us-east-1"
ACCOUNT = "123456789012"
INFRA = ROOT / "infra"

# Static keys the test config gives each user (the example config itself ships none).
USER_KEYS = {
    name: (f"AKIATEST{name.upper():0<12}"[:20], f"{name}-secret-{'x' * 24}")
    for name in ("alice", "amir", "bob", "bea", "carol", "dan")
}
ROLE_KEY = ("AKIAROLEDEPLOYER0001", "deployer-secret-xxxxxxxxxxxxxxxx")


# --- signing ----------------------------------------------------------------------------------


class _SignAt(SigV4Auth):
    """botocore's signer with a chosen clock, to sign requests from the past or future."""

    def __init__(self, credentials: Credentials, region: str, when: dt.datetime) -> None:
        super().__init__(credentials, "airflow", region)
        self._when = when

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._when.strftime("%Y%m%dT%H%M%SZ")
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)


def sign(
    method: str,
    url: str,
    key: tuple[str, str],
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    token: str | None = None,
    when: dt.datetime | None = None,
    region: str = REGION,
) -> dict[str, str]:
    """Headers (Authorization, X-Amz-Date, ...) that sign this request as boto3 would."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    credentials = Credentials(key[0], key[1], token)
    _SignAt(credentials, region, when or dt.datetime.now(dt.UTC)).add_auth(request)
    return dict(request.headers.items())


def presign(url: str, key: tuple[str, str], *, expires: int = 300) -> str:
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(*key), "airflow", REGION, expires=expires).add_auth(request)
    return request.url


class SignedAuth(httpx.Auth):
    """Sign every httpx request with SigV4 (service `airflow`), over the Host it will send."""

    requires_request_body = True

    def __init__(self, key: tuple[str, str]) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        host = request.headers.get("host") or request.url.netloc.decode()
        url = str(request.url.copy_with(netloc=host.encode()))
        signed = sign(
            request.method,
            url,
            self._key,
            body=request.content,
            headers={"host": host},
        )
        for name, value in signed.items():
            if name.lower() != "host":
                request.headers[name] = value
        yield request


# --- a server with an IAM config --------------------------------------------------------------


def example_config() -> dict:
    """infra/iam-example.yaml plus static keys for its users and its role."""
    config = yaml.safe_load((INFRA / "iam-example.yaml").read_text())
    for name, (akid, secret) in USER_KEYS.items():
        config["users"][name]["access_keys"] = [
            {"access_key_id": akid, "secret_access_key": secret}
        ]
    config["roles"]["team-a-deployer"]["access_keys"] = [
        {"access_key_id": ROLE_KEY[0], "secret_access_key": ROLE_KEY[1], "session_name": "ci"}
    ]
    return config


def write_config(directory: Path, config: dict) -> Path:
    """Write `config` as YAML beside a copy of infra/policies (for its file:// references)."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "policies").exists():
        shutil.copytree(INFRA / "policies", directory / "policies")
    path = directory / "iam.yaml"
    # Atomic: the server never reads a half-written file.
    atomic_write(path, yaml.safe_dump(config, sort_keys=False))
    return path


def airdock(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `airdock` command line."""
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "--log-level", "WARNING", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


@dataclass
class IamServer:
    live: LiveServer
    config_path: Path

    def client(self, key: tuple[str, str], token: str | None = None):
        return boto3.client(
            "mwaa",
            endpoint_url=self.live.url,
            region_name=REGION,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            aws_session_token=token,
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )

    def user(self, name: str):
        return self.client(USER_KEYS[name])

    def admin(self):
        return self.live.mwaa()

    def log_text(self) -> str:
        return (self.live.data_dir.parent / f"{self.live.data_dir.name}-server.log").read_text()


def start_iam_server(base: Path, config: dict) -> IamServer:
    path = write_config(base / "config", config)
    live = start_server(base / "data", "--iam-config", str(path))
    return IamServer(live, path)


def execution_role(live: LiveServer, name: str, bucket: str | None = None) -> str:
    """An MWAA execution role on the path the team policy lets users pass; with `bucket`, it
    may read that bucket."""
    iam = live.aws("iam")
    arn = iam.create_role(
        Path="/service-role/",
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
    )["Role"]["Arn"]
    if bucket is not None:
        iam.put_role_policy(
            RoleName=name,
            PolicyName="mwaa-execution",
            PolicyDocument=execution_role_policy(bucket),
        )
    return arn


def error_code(call) -> str | None:
    """The AWS error code `call` fails with; None when it succeeds."""
    try:
        call()
    except ClientError as err:
        return err.response["Error"]["Code"]
    return None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
