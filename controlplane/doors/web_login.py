"""`/aws_mwaa/aws-console-sso`: a web-login token in, a browser signed in to Airflow out.

GET serves the page that lifts the token out of the URL fragment (login_page); its POST brings
the token here. A live, unused web token for this environment is used up and the browser gets
a session in the environment's Airflow as the user for the Airflow role IAM allowed when the
token was minted; anything else gets a 403 page and no cookie.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from controlplane.doors import airflow_sessions
from controlplane.doors.directory import Door
from controlplane.doors.login_page import login_page
from controlplane.doors.pages import SECURITY_HEADERS, forbidden, page, unavailable
from environments.service import EnvironmentService, RedeemedToken

log = logging.getLogger("airdock.doors")

MAX_FORM_BYTES = 8 * 1024
# (door, redeemed token) -> (username, password) of the environment's Airflow user to act as.
CredentialsFor = Callable[[Door, RedeemedToken], Awaitable[tuple[str, str]]]


class WebLogin:
    def __init__(
        self,
        service: EnvironmentService,
        session: Callable[[], aiohttp.ClientSession],
        credentials_for: CredentialsFor,
    ) -> None:
        self._service = service
        self._session = session
        self._credentials_for = credentials_for

    async def handle(self, request: web.Request, door: Door) -> web.StreamResponse:
        if request.method in ("GET", "HEAD"):
            return login_page()
        if request.method != "POST":
            return page(405, "405 Method Not Allowed", "Use the sign-in link.")
        if (request.content_length or 0) > MAX_FORM_BYTES:
            return forbidden("This sign-in request is not valid.")
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not token:
            return forbidden("This sign-in link carries no token.")
        granted = await asyncio.to_thread(
            self._service.redeem_token, token, "web", door.name, single_use=True
        )
        if granted is None or not granted.airflow_role:
            return forbidden(
                "This sign-in link is not valid: it has expired, was already used, or was not "
                "made for this environment. Ask for a new one (CreateWebLoginToken)."
            )
        if door.upstream is None or door.airflow_version is None:
            return unavailable(door.name)
        try:
            username, password = await self._credentials_for(door, granted)
            cookie = await airflow_sessions.sign_in(
                self._session(),
                door.upstream,
                int(door.airflow_version.split(".")[0]),
                username,
                password,
            )
        except (airflow_sessions.SignInFailed, aiohttp.ClientError, TimeoutError) as err:
            log.warning("signing in to the Airflow of %s failed: %s", door.name, err)
            return unavailable(door.name)
        # Airflow 3's UI keeps its token in localStorage and prefers it to the cookie: clear
        # what an earlier sign-in (perhaps as another role) left there.
        headers = {**SECURITY_HEADERS, "Location": "/", "Clear-Site-Data": '"storage"'}
        response = web.Response(status=303, headers=headers)
        response.set_cookie(
            cookie.name,
            cookie.value,
            path="/",
            secure=True,
            httponly=cookie.http_only,
            samesite="Lax",
        )
        return response
