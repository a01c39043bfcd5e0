"""A signed-in Airflow UI session for a user of the environment's Airflow, made server-side.

The web doors sign in to Airflow itself with the user's credentials and hand the browser the
cookie Airflow set, so the browser never sees a password:

- Airflow 3 (FabAuthManager): `POST /auth/token` gives a JWT; the UI reads it from the `_token`
  cookie (Airflow's own FAB login page sets the same cookie).
- Airflow 2 (FAB): a basic-auth call to its REST API logs the user in, and the Flask `session`
  cookie it sets serves the UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

JWT_COOKIE = "_token"
FLASK_SESSION_COOKIE = "session"
# The proxy's client session passes bodies through undecoded: ask for them uncompressed.
PLAIN = frozenset({"Accept-Encoding"})


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
    return await _flask_session(session, upstream, username, password)


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


async def _flask_session(
    session: aiohttp.ClientSession, upstream: str, username: str, password: str
) -> UiCookie:
    # Any call FAB authenticates with basic auth logs the user in (flask_login), and the
    # session cookie it sets then serves the UI as well.
    auth = aiohttp.BasicAuth(username, password)
    async with session.get(
        f"{upstream}/api/v1/dags",
        params={"limit": "1"},
        auth=auth,
        allow_redirects=False,
        skip_auto_headers=PLAIN,
    ) as answer:
        cookie = answer.cookies.get(FLASK_SESSION_COOKIE)
        if answer.status != 200 or cookie is None or not cookie.value:
            raise SignInFailed(f"Airflow refused the sign-in ({answer.status})")
    return UiCookie(FLASK_SESSION_COOKIE, cookie.value, http_only=True)
