"""A signed-in Airflow UI session for a user of the environment's Airflow, made server-side.

The web doors sign in to Airflow itself with the user's credentials and hand the browser the
cookie Airflow set, so the browser never sees a password:

- Airflow 3 (FabAuthManager): `POST /auth/token` gives a JWT; the UI reads it from the `_token`
  cookie (Airflow's own FAB login page sets the same cookie).
- Airflow 2 (FAB): its login form, with the form's CSRF token, gives the Flask `session`
  cookie (a basic-auth API call signs in for that call alone: its session is not kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

JWT_COOKIE = "_token"
FLASK_SESSION_COOKIE = "session"
# The proxy's client session passes bodies through undecoded: ask for them uncompressed.
PLAIN = frozenset({"Accept-Encoding"})
SIGN_IN_TIMEOUT = aiohttp.ClientTimeout(total=60)
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class SignInFailed(Exception):
    pass


@dataclass(frozen=True)
class UiCookie:
    name: str
    value: str
    http_only: bool  # the Airflow 3 UI's script reads its token cookie


async def sign_in(
    session: aiohttp.ClientSession, upstream: str, major: int, username: str, password: str
) -> UiCookie:
    if major >= 3:
        return await _jwt_cookie(session, upstream, username, password)
    return await _flask_session(upstream, username, password)


async def _jwt_cookie(
    session: aiohttp.ClientSession, upstream: str, username: str, password: str
) -> UiCookie:
    async with session.post(
        f"{upstream}/auth/token",
        json={"username": username, "password": password},
        skip_auto_headers=PLAIN,
    ) as answer:
        if answer.status not in (200, 201):
            raise SignInFailed(f"Airflow refused the sign-in ({answer.status})")
        token = (await answer.json()).get("access_token")
    if not token:
        raise SignInFailed("Airflow gave no access token")
    return UiCookie(JWT_COOKIE, token, http_only=False)


async def _flask_session(upstream: str, username: str, password: str) -> UiCookie:
    # A client of its own, whose jar holds the login form's session for this sign-in alone.
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: the upstream host is an IP address
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=SIGN_IN_TIMEOUT) as session:
        async with session.get(f"{upstream}/login/") as form:
            found = _CSRF.search(await form.text())
        if found is None:
            raise SignInFailed("Airflow's login form has no CSRF token")
        async with session.post(
            f"{upstream}/login/",
            data={"username": username, "password": password, "csrf_token": found.group(1)},
            allow_redirects=False,
        ) as answer:
            cookie = answer.cookies.get(FLASK_SESSION_COOKIE)
            location = answer.headers.get("Location", "")
            if answer.status != 302 or cookie is None or "/login" in location:
                raise SignInFailed(f"Airflow refused the sign-in ({answer.status})")
    return UiCookie(FLASK_SESSION_COOKIE, cookie.value, http_only=True)
