"""The console in headless Chromium (Debian's `chromium`, driven by Playwright): sign-in, the
live list, a Viewer who cannot delete, an Admin who changes the worker limits and deletes.

Screenshots go to $AIRDOCK_TEST_OUTPUT/console (default: test-output/console in the checkout).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for_status, wait_gone
from tests.e2e.iam_support import USER_KEYS, unique

pytest_plugins = ["tests.e2e.iam_fixtures"]  # the iam_server and team_params fixtures
pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("AIRDOCK_TEST_OUTPUT", ROOT / "test-output")) / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/test installs it when root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def environments(iam_server, team_params) -> dict[str, str]:
    names = {}
    for team, user in (("a", "alice"), ("b", "bob")):
        name = unique(f"web-{team}")
        client = iam_server.user(user)
        client.create_environment(Name=name, **team_params(Tags={"team": team}))
        wait_for_status(client, name, {"AVAILABLE"}, timeout=60)
        names[team] = name
    return names


def sign_in(browser, url: str, key: tuple[str, str], shot: str | None = None):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{url}/console")
    assert page.url.endswith("/console/sign-in")  # no session: sent to sign in
    page.fill("#akid", key[0])
    page.fill("#secret", key[1])
    if shot:
        page.screenshot(path=str(SHOTS / shot))
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/console")
    return page


def test_sign_in_and_the_live_list(browser, iam_server, environments, team_params):
    live = iam_server.live
    page = sign_in(browser, live.url, live.admin_key(), shot="01-sign-in.png")
    rows = page.locator("#environments tr[data-environment]")
    for name in environments.values():
        assert rows.filter(has_text=name).count() == 1
    assert "AVAILABLE" in page.inner_text("#environments")
    # A new environment appears without a reload (the list refreshes itself).
    name = unique("web-new")
    iam_server.user("alice").create_environment(Name=name, **team_params(Tags={"team": "a"}))
    page.locator(f'tr[data-environment="{name}"]').wait_for(timeout=15_000)
    page.locator(f'tr[data-environment="{name}"] .AVAILABLE').wait_for(timeout=30_000)
    page.screenshot(path=str(SHOTS / "02-list.png"), full_page=True)
    page.close()


def test_a_viewer_cannot_delete(browser, iam_server, environments):
    page = sign_in(browser, iam_server.live.url, USER_KEYS["carol"])
    page.click(f"text={environments['a']}")
    page.wait_for_selector("[data-testid=no-delete]")
    assert page.locator("button.danger").count() == 0
    assert page.locator("#max").is_disabled()
    page.screenshot(path=str(SHOTS / "03-viewer-cannot-delete.png"), full_page=True)
    page.close()


def test_an_admin_updates_workers_then_deletes(browser, iam_server, environments):
    live = iam_server.live
    name = environments["b"]
    page = sign_in(browser, live.url, live.admin_key())
    page.click(f"text={name}")
    page.fill("#min", "2")
    page.fill("#max", "6")
    page.click("text=Update workers")
    page.wait_for_selector("p.notice")
    # The status card follows the update live, back to AVAILABLE.
    page.locator("[data-testid=status].AVAILABLE").wait_for(timeout=30_000)
    env = iam_server.admin().get_environment(Name=name)["Environment"]
    assert (env["MinWorkers"], env["MaxWorkers"]) == (2, 6)
    assert page.input_value("#max") == "6"
    page.screenshot(path=str(SHOTS / "04-admin-updates-workers.png"), full_page=True)

    page.fill("#confirm", name)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button.danger")
    page.wait_for_url(f"{live.url}/console")
    wait_gone(iam_server.admin(), name, timeout=30)
    page.locator(f'tr[data-environment="{name}"]').wait_for(state="detached", timeout=15_000)
    page.close()
