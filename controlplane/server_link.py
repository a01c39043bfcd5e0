"""How `airdock` commands reach a running server: its address, a key, and plain errors.

The address comes from `--endpoint-url` or the data dir's endpoints.json; the key from the
standard AWS variables or profile when they are set, else the data dir's admin key. A server
that does not answer gives one message everywhere: "no Airdock server at URL; start it with
./scripts/up".
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from controlplane.clientconfig import ENDPOINTS_FILE, read_endpoints
from controlplane.credentials import read_admin

START_HINT = "start it with ./scripts/up"


class ServerUnreachable(Exception):
    """No server answers where one should; the message says where and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unreachable(url: str) -> ServerUnreachable:
    return ServerUnreachable(f"no Airdock server at {url}; {START_HINT}")


class ApiError(Exception):
    """The server refused a request with an AWS-shaped error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ServerLink:
    url: str
    region: str
    credentials: Credentials


def recorded_url(data_dir: Path) -> tuple[str, str]:
    """(MWAA endpoint, region) that the server of `data_dir` recorded."""
    try:
        endpoints = read_endpoints(data_dir)
    except (OSError, ValueError):
        raise ServerUnreachable(
            f"no Airdock server has run with data dir {data_dir} (no readable {ENDPOINTS_FILE}); "
            f"{START_HINT}, or pass --data-dir DIR or --endpoint-url URL"
        ) from None
    return endpoints.mwaa_endpoint, endpoints.region


def _credentials(data_dir: Path) -> Credentials:
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        import botocore.session

        # botocore logs where it found the credentials at INFO, the CLI's default: noise here.
        if logging.getLogger().getEffectiveLevel() >= logging.INFO:
            logging.getLogger("botocore").setLevel(logging.WARNING)

        found = botocore.session.get_session().get_credentials()
        if found is not None:
            return found
    try:
        admin = read_admin(data_dir)
    except (OSError, ValueError) as err:
        raise ServerUnreachable(
            f"no AWS credentials set and no admin key in {data_dir} ({err})"
        ) from None
    return Credentials(admin.access_key_id, admin.secret_access_key)


def connect(data_dir: Path, endpoint_url: str | None = None, region: str | None = None):
    """A link to the server, checked to answer (ServerUnreachable when it does not)."""
    if endpoint_url:
        url, recorded_region = endpoint_url.rstrip("/"), "us-east-1"
    else:
        url, recorded_region = recorded_url(data_dir)
    ensure_up(url)
    return ServerLink(url, region or recorded_region, _credentials(data_dir))


def ensure_up(url: str, timeout: float = 3.0) -> None:
    """Raise ServerUnreachable unless something answers /_airdock/health at `url`."""
    try:
        with urllib.request.urlopen(url + "/_airdock/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answers (503 while starting): it is there
    except (OSError, ValueError):
        raise unreachable(url) from None


def signed_get(link: ServerLink, path: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET `path` signed with SigV4 (service airflow); the JSON answer, or ApiError."""
    return signed_call(link, "GET", path, timeout)


def signed_call(link: ServerLink, method: str, path: str, timeout: float = 10.0) -> dict[str, Any]:
    """`method` on `path`, bodiless and signed with SigV4 (service airflow); the JSON answer,
    or ApiError."""
    request = AWSRequest(method=method, url=link.url + path)
    SigV4Auth(link.credentials, "airflow", link.region).add_auth(request)
    prepared = urllib.request.Request(
        link.url + path, headers=dict(request.headers.items()), method=method
    )
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as answer:
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        body = _json(err.read())
        code = err.headers.get("x-amzn-ErrorType") or body.get("__type") or str(err.code)
        message = body.get("Message") or body.get("message") or err.reason
        raise ApiError(err.code, code.split(":")[0], str(message)) from None
    except (OSError, ValueError):
        raise unreachable(link.url) from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
