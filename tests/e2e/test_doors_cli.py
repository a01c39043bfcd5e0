"""The web server address and the CLI door, against the session's real Airflow environments.

`WebserverUrl` reaches the environment's Airflow over HTTPS from requests, urllib and curl, each
trusting only `ca_bundle`; `POST /aws_mwaa/cli` with a CLI token runs allowed commands in the
environment and refuses the rest; forged, expired and other environments' tokens get 403.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import ssl
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
import requests

from environments.store import Store, TokenRow, add_token
from tests.conftest import ROOT
from tests.e2e.conftest import SharedEnvironment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

VERSIONS = ["3.0.6", "2.10.3"]


def health_path(version: str) -> str:
    return "/api/v2/monitor/health" if version.startswith("3.") else "/health"


def run_cli(env: SharedEnvironment, token: str, host: str, command: str) -> requests.Response:
    return requests.post(
        f"https://{host}/aws_mwaa/cli",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        data=command,
        verify=env.live.endpoints["ca_bundle"],
        timeout=180,
    )


def decoded(answer: requests.Response) -> tuple[str, str]:
    body = answer.json()
    return base64.b64decode(body["stdout"]).decode(), base64.b64decode(body["stderr"]).decode()


def plant_token(
    env: SharedEnvironment, kind: str, expires_in: float, airflow_role: str | None = None
) -> str:
    """A token written straight into the server's store, as minting would, with any lifetime."""
    token = secrets.token_urlsafe(48)
    db = Store(f"sqlite:///{env.live.data_dir / 'airdock.db'}")
    try:
        with db.transaction() as session:
            add_token(
                session,
                TokenRow(
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    kind=kind,
                    env_name=env.name,
                    identity="arn:aws:iam::123456789012:user/airdock-admin",
                    airflow_role=airflow_role,
                    expires_at=time.time() + expires_in,
                ),
            )
    finally:
        db.dispose()
    return token


def env_open(
    env: SharedEnvironment, name: str, *extra: str, browser_command: str | None = None
) -> subprocess.CompletedProcess:
    """`airdock env open NAME` as a user runs it, with the data dir's admin key."""
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "env", "open", name, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AIRDOCK_DATA_DIR": str(env.live.data_dir),
            **({"BROWSER": browser_command} if browser_command else {}),
        },
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_the_web_server_address_answers_over_https_to_every_client(shared_environment, version):
    env = shared_environment(version)
    ca = env.live.endpoints["ca_bundle"]
    described = env.live.mwaa().get_environment(Name=env.name)["Environment"]
    host = env.live.mwaa().create_cli_token(Name=env.name)["WebServerHostname"]
    assert described["WebserverUrl"] == f"https://{host}"
    address = host.split(":")[0]
    assert address.startswith("127.") and not address.startswith("127.0.")
    url = described["WebserverUrl"] + health_path(version)

    assert requests.get(url, verify=ca, timeout=30).json()["metadatabase"]["status"] == "healthy"
    with urllib.request.urlopen(url, context=ssl.create_default_context(cafile=ca)) as answer:
        assert answer.status == 200
    curl = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", ca, url], capture_output=True, text=True, timeout=60
    )
    assert curl.returncode == 0, curl.stderr
    assert json.loads(curl.stdout)["metadatabase"]["status"] == "healthy"
    # Without the CA the certificate is not trusted: it is the local CA's, not a public one.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=30)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_cli_door_runs_allowed_commands_as_the_environment(shared_environment, version):
    env = shared_environment(version)

    def run(command: str) -> requests.Response:
        # A token per command, as MWAA's examples do: a command on a busy machine can take
        # longer than a token's minute.
        minted = env.live.mwaa().create_cli_token(Name=env.name)
        return run_cli(env, minted["CliToken"], minted["WebServerHostname"], command)

    answer = run("version")
    assert answer.status_code == 200, answer.text
    assert decoded(answer)[0].strip() == version

    # The write lands in the environment's Airflow (a variable under a name of this test's).
    name = f"doors_{secrets.token_hex(4)}"
    assert run(f"variables set {name} 'hello doors'").status_code == 200
    stdout, _ = decoded(run(f"variables get {name}"))
    assert stdout.strip() == "hello doors"

    # Outside MWAA's allow-list: refused as MWAA refuses it (HTTP 500), and nothing runs.
    for refused in ("db reset -y", "users create -u x -r Admin -e x@x -f x -l x -p x", "config"):
        answer = run(refused)
        assert answer.status_code == 500, (refused, answer.text)
        assert "not a supported command" in decoded(answer)[1]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_cli_door_refuses_forged_expired_and_foreign_tokens(shared_environment, version):
    env = shared_environment(version)
    host = env.live.mwaa().create_cli_token(Name=env.name)["WebServerHostname"]

    forged = secrets.token_urlsafe(48)
    expired = plant_token(env, "cli", expires_in=-1)
    web_token = env.live.mwaa().create_web_login_token(Name=env.name)["WebToken"]
    for token in (forged, expired, web_token, ""):
        answer = run_cli(env, token, host, "version")
        assert answer.status_code == 403, (token, answer.text)
        assert "stdout" not in answer.json()
    no_header = requests.post(
        f"https://{host}/aws_mwaa/cli",
        data="version",
        verify=env.live.endpoints["ca_bundle"],
        timeout=60,
    )
    assert no_header.status_code == 403
    # A live token planted the same way works: the refusals above were about the tokens.
    assert run_cli(env, plant_token(env, "cli", expires_in=60), host, "version").status_code == 200


def test_env_open_prints_a_fresh_login_url_and_can_hand_it_to_a_browser(
    shared_environment, tmp_path
):
    env = shared_environment("3.0.6")
    host = env.live.mwaa().create_cli_token(Name=env.name)["WebServerHostname"]
    printed = env_open(env, env.name)
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    prefix = f"https://{host}/aws_mwaa/aws-console-sso?login=true#"
    assert url.startswith(prefix) and len(url) > len(prefix) + 40
    # `--browser` hands it to the browser $BROWSER names (here a script that keeps it).
    kept = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.sh"
    recorder.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {kept}\n')
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    opened = env_open(env, env.name, "--browser", browser_command=f"{recorder} %s")
    assert opened.returncode == 0, opened.stderr
    assert kept.read_text() == opened.stdout.strip() != url  # a fresh token each time
    missing = env_open(env, "no-such-environment")
    assert missing.returncode == 1
    assert "ResourceNotFoundException" in missing.stderr
