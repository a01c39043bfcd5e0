"""Web login in headless Chromium (Debian's `chromium`, driven by Playwright), against the
session's real Airflow environments.

`airdock env open` mints a web-login URL as the admin; Chromium opening it ends signed in to the
Airflow UI as Admin (a screenshot is saved). A Viewer's token signs in as Viewer, who can list
DAGs but is refused a trigger: that token comes from CreateWebLoginToken called with boto3 as
the shared server's Viewer-only IAM user (tests/e2e/conftest.py), so the whole path from an IAM
policy to an Airflow role is the one a user takes. A used, expired or forged token gets the 403
page and no session.
Chromium trusts the local CA by its public key (--ignore-certificate-errors-spki-list), so the
test still fails on a certificate that does not chain to it.

Screenshots go to $AIRDOCK_TEST_OUTPUT/doors (default: test-output/doors in the checkout).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import ROOT, LiveServer
from tests.e2e.airflow_support import viewer_mwaa
from tests.e2e.test_doors_cli import env_open, plant_token

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

VERSIONS = ["3.0.6", "2.10.3"]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("AIRDOCK_TEST_OUTPUT", ROOT / "test-output")) / "doors"


def ca_pin(bundle: str) -> str:
    """The CA's public-key hash in the form Chromium's SPKI allow-list takes."""
    ca = x509.load_pem_x509_certificate(Path(bundle).read_bytes())
    der = ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser(airflow_live: LiveServer) -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/test installs it when root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--ignore-certificate-errors-spki-list={ca_pin(airflow_live.endpoints['ca_bundle'])}",
    ]
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


def login_url(host: str, token: str) -> str:
    return f"https://{host}/aws_mwaa/aws-console-sso?login=true#{token}"


def trigger_status(page, version: str) -> int:
    """What Airflow answers this browser's session asking to trigger a DAG run (of a DAG that
    does not exist: 404 for a role that may trigger, 403 for one that may not)."""
    if version.startswith("3."):
        return page.evaluate(
            """async () => (await fetch("/api/v2/dags/no_such_dag/dagRuns", {
                method: "POST", signal: AbortSignal.timeout(30000),
                headers: {"Authorization": "Bearer " + localStorage.getItem("token"),
                          "Content-Type": "application/json"},
                body: JSON.stringify({logical_date: null})})).status"""
        )
    return page.evaluate(
        """async () => (await fetch("/api/v1/dags/no_such_dag/dagRuns", {
            method: "POST", signal: AbortSignal.timeout(30000),
            headers: {"Content-Type": "application/json"}, body: "{}"})).status"""
    )


def dag_list_status(page, version: str) -> int:
    if version.startswith("3."):
        return page.evaluate(
            """async () => (await fetch("/api/v2/dags", {signal: AbortSignal.timeout(30000),
                headers: {"Authorization": "Bearer " + localStorage.getItem("token")}})).status"""
        )
    # A 401 here must not stall on a password prompt (the doors drop Airflow's challenge).
    return page.evaluate(
        """async () => (await fetch("/api/v1/dags",
            {signal: AbortSignal.timeout(30000)})).status"""
    )


def signed_in(context, host: str, version: str) -> bool:
    """Whether Airflow takes this browser for a signed-in user (Airflow 2 hands even an
    anonymous visitor a session cookie, so the cookie's presence says nothing). Asked from a
    page of Airflow's own: the doors' sign-in page allows itself no requests at all."""
    probe = context.new_page()
    try:
        api = "v2" if version.startswith("3.") else "v1"
        probe.goto(f"https://{host}/api/{api}/version")
        return dag_list_status(probe, version) == 200
    finally:
        probe.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_browser_signs_in_with_a_web_login_token(browser, shared_environment, version):
    env = shared_environment(version)
    opened = env_open(env, env.name)  # as the admin: Admin in Airflow
    assert opened.returncode == 0, opened.stderr
    url = opened.stdout.strip()
    host = url.split("/")[2]

    admin = browser.new_context()
    page = admin.new_page()
    page.goto(url)
    page.wait_for_url(lambda now: "aws-console-sso" not in now, timeout=60_000)
    page.get_by_text("DAGs").first.wait_for(timeout=60_000)
    assert "#" not in page.url  # the token left the address bar
    page.screenshot(path=str(SHOTS / f"airflow-{version}-admin.png"), full_page=True)
    assert dag_list_status(page, version) == 200
    assert trigger_status(page, version) == 404  # allowed, and there is no such DAG
    assert signed_in(admin, host, version)  # the probe below can tell

    # The same link again: used up. A fresh browser gets the 403 page and no session.
    again = browser.new_context()
    refused = again.new_page()
    refused.goto(url)
    refused.get_by_text("403 Forbidden").wait_for(timeout=30_000)
    assert not signed_in(again, host, version)
    again.close()

    # A user whose IAM policy allows the Airflow UI as Viewer only.
    minted = viewer_mwaa(env.live).create_web_login_token(Name=env.name)
    assert minted["IamIdentity"] == "user/viewer", minted  # as MWAA names it
    assert minted["WebServerHostname"] == host
    viewer = browser.new_context()
    page = viewer.new_page()
    page.goto(login_url(host, minted["WebToken"]))
    page.wait_for_url(lambda now: "aws-console-sso" not in now, timeout=60_000)
    page.get_by_text("DAGs").first.wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / f"airflow-{version}-viewer.png"), full_page=True)
    assert dag_list_status(page, version) == 200  # may look
    assert trigger_status(page, version) == 403  # may not trigger
    viewer.close()
    admin.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_expired_and_forged_web_tokens_get_the_403_page(browser, shared_environment, version):
    env = shared_environment(version)
    host = env.live.mwaa().create_cli_token(Name=env.name)["WebServerHostname"]
    for token in (
        plant_token(env, "web", expires_in=-1, airflow_role="Admin"),
        secrets.token_urlsafe(48),
        plant_token(env, "cli", expires_in=60),  # a CLI token is no web token
        "",
    ):
        context = browser.new_context()
        page = context.new_page()
        answer = page.goto(login_url(host, token))
        assert answer is not None and answer.status == 200  # the page that reads the fragment
        page.wait_for_load_state("networkidle")
        page.get_by_text("403 Forbidden" if token else "carries no token").wait_for(timeout=30_000)
        assert not signed_in(context, host, version)
        context.close()
