"""Helpers for the console tests: a signed-in HTTP client, and the CSRF token of a page."""

from __future__ import annotations

import re

import httpx

from tests.conftest import LiveServer

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form token"
    return found.group(1)


def signed_in(live: LiveServer, key: tuple[str, str]) -> httpx.Client:
    """An HTTP client with a console session for `key`."""
    client = httpx.Client(base_url=live.url, timeout=30)
    page = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={
            "csrf": csrf_of(page.text),
            "access_key_id": key[0],
            "secret_access_key": key[1],
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console", answer.text
    return client


def page_csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
