"""AirflowAccess: credentials for an environment's Airflow, as an IAM identity in an MWAA role.

See the package's docstring for the design. One instance per process; thread-safe (the API
serves write routes from a thread pool).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from json import loads as parse_json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from environments.airflow.access.endpoint import AirflowEndpoint, read_endpoint
from environments.airflow.runtime.identity import (
    Login,
    email_for,
    password_for,
    service_login,
    username_for,
)

# A cached credential is fetched again after this long, well inside Airflow's lifetimes for
# JWTs (1 h or more) and sessions (30 days).
CREDENTIAL_TTL_SECONDS = 600.0
# How long Airflow gets to answer one request (MWAA's InvokeRestApi gives it 10 s).
DEFAULT_TIMEOUT_SECONDS = 10.0
SESSION_COOKIE = "session"


class AirflowUnreachable(Exception):
    """The environment's Airflow did not answer: refused, reset, or too slow (`timed_out`)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class AirflowRefused(Exception):
    """Airflow refused Airdock's own bookkeeping (a user it could not create or sign in)."""


@dataclass
class _Credential:
    headers: dict[str, str]
    fetched_at: float

    def fresh(self) -> bool:
        return time.monotonic() - self.fetched_at < CREDENTIAL_TTL_SECONDS


class AirflowAccess:
    def __init__(self, data_dir: Path, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.data_dir = data_dir
        self.timeout = timeout
        self._lock = threading.Lock()
        self._credentials: dict[tuple, _Credential] = {}
        self._users: set[tuple] = set()  # (endpoint key, username) known to exist
        self._clients: dict[str, httpx.Client] = {}

    # --- the public face -----------------------------------------------------------------

    def endpoint(self, environment: str) -> AirflowEndpoint:
        """Where the environment's Airflow listens; NotRunning when it does not."""
        return read_endpoint(self.data_dir, environment)

    def login_for(self, environment: str, identity: str, role: str) -> Login:
        """The FAB user of `identity` in `environment`, with `role` (created or updated as
        needed), and its password: for a browser sign-in, say."""
        endpoint = self.endpoint(environment)
        username = self._ensure_user(endpoint, identity, role)
        return Login(username, password_for(endpoint.access_key, username))

    def headers_for(self, environment: str, identity: str, role: str) -> dict[str, str]:
        """Headers that authenticate a request to the environment's REST API as `identity`
        in `role` (a Bearer JWT on 3.x, a session cookie or basic auth on 2.x)."""
        endpoint = self.endpoint(environment)
        return dict(self._credential(endpoint, identity, role).headers)

    def request(
        self,
        environment: str,
        identity: str,
        role: str,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        max_bytes: int | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """One call to the environment's REST API (`path` relative to its root: /api/v2 on
        3.x, /api/v1 on 2.x) as `identity` in `role`. Returns the response and its body, read
        up to `max_bytes` + 1 bytes. AirflowUnreachable when Airflow does not answer."""
        endpoint = self.endpoint(environment)
        url = endpoint.base_url + endpoint.api_root + path
        credential = self._credential(endpoint, identity, role)
        response, body = self._send(
            endpoint, method, url, credential.headers, params, json, max_bytes
        )
        if response.status_code == 401:  # a stale credential: a new database, say
            credential = self._credential(endpoint, identity, role, renew=True)
            response, body = self._send(
                endpoint, method, url, credential.headers, params, json, max_bytes
            )
        return response, body

    def forget(self, environment: str) -> None:
        """Drop what this process holds for `environment` (after it was deleted, say)."""
        with self._lock:
            for key in [k for k in self._credentials if k[0][0] == environment]:
                del self._credentials[key]
            self._users = {u for u in self._users if u[0][0] != environment}

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # --- credentials ---------------------------------------------------------------------

    def _credential(
        self, endpoint: AirflowEndpoint, identity: str, role: str, *, renew: bool = False
    ) -> _Credential:
        username = self._ensure_user(endpoint, identity, role, again=renew)
        key = (endpoint.cache_key, username)
        with self._lock:
            cached = self._credentials.get(key)
        if cached is not None and cached.fresh() and not renew:
            return cached
        login = Login(username, password_for(endpoint.access_key, username))
        credential = _Credential(self._sign_in(endpoint, login), time.monotonic())
        with self._lock:
            self._credentials[key] = credential
        return credential

    def _sign_in(self, endpoint: AirflowEndpoint, login: Login) -> dict[str, str]:
        if endpoint.major >= 3:
            answer = {"username": login.username, "password": login.password}
            url = endpoint.base_url + "/auth/token"
            response, body = self._send(endpoint, "POST", url, {}, json=answer)
            if response.status_code not in (200, 201):
                raise AirflowRefused(
                    f"signing {login.username} in: Airflow answered {response.status_code}"
                )
            token = parse_json(body)["access_token"]
            return {"Authorization": f"Bearer {token}"}
        basic = _basic(login)
        # Any authenticated call starts the session; its cookie then spares the password hash.
        url = endpoint.base_url + "/api/v1/dags"
        response, _ = self._send(endpoint, "GET", url, basic, {"limit": 1}, max_bytes=0)
        if response.status_code == 401:
            raise AirflowRefused(f"signing {login.username} in: Airflow answered 401")
        cookie = _session_cookie(response)
        return {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else basic

    # --- users ---------------------------------------------------------------------------

    def _ensure_user(
        self, endpoint: AirflowEndpoint, identity: str, role: str, *, again: bool = False
    ) -> str:
        """Make the FAB user of (identity, role) exist, with that role and its derived
        password (again=True: ask Airflow even if this process made it before)."""
        username = username_for(identity, role)
        known = (endpoint.cache_key, username)
        with self._lock:
            if known in self._users and not again:
                return username
        service = _basic(service_login(endpoint.access_key))
        url = f"{endpoint.base_url}{endpoint.users_root}"
        user = {
            "username": username,
            "first_name": identity[:64],
            "last_name": role,
            "email": email_for(username),
            "roles": [{"name": role}],
            "password": password_for(endpoint.access_key, username),
        }
        found, _ = self._send(endpoint, "GET", f"{url}/{quote(username)}", service)
        if found.status_code == 404:
            made, _ = self._send(endpoint, "POST", url, service, json=user)
            status = made.status_code
            if status == 409:  # another process made it meanwhile
                status = self._update(endpoint, url, user, service)
        elif found.status_code == 200 and again:
            status = self._update(endpoint, url, user, service)
        else:
            status = found.status_code
        if status not in (200, 201):
            raise AirflowRefused(f"keeping FAB user {username}: Airflow answered {status}")
        with self._lock:
            self._users.add(known)
        return username

    def _update(
        self, endpoint: AirflowEndpoint, url: str, user: dict[str, Any], service: dict[str, str]
    ) -> int:
        """Put the user back as Airdock made it: its role and its derived password."""
        response, _ = self._send(
            endpoint,
            "PATCH",
            f"{url}/{quote(user['username'])}",
            service,
            {"update_mask": "roles,password"},
            user,
        )
        return response.status_code

    # --- HTTP ------------------------------------------------------------------------------

    def _client(self, endpoint: AirflowEndpoint) -> httpx.Client:
        with self._lock:
            client = self._clients.get(endpoint.base_url)
            if client is None:
                # One client (and connection pool) serves every identity, so it must keep no
                # cookies: its jar refuses them all, and each credential carries its own.
                client = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                    trust_env=False,
                )
                self._clients[endpoint.base_url] = client
            return client

    def _send(
        self,
        endpoint: AirflowEndpoint,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Any = None,
        json: Any = None,
        max_bytes: int | None = None,
    ) -> tuple[httpx.Response, bytes]:
        client = self._client(endpoint)
        try:
            with client.stream(method, url, headers=headers, params=params, json=json) as answer:
                body = _read(answer, max_bytes)
        except httpx.TimeoutException:
            raise AirflowUnreachable(
                f"the Airflow of {endpoint.name} did not answer within {self.timeout:g} s",
                timed_out=True,
            ) from None
        except httpx.TransportError as err:
            raise AirflowUnreachable(
                f"the Airflow of {endpoint.name} cannot be reached ({type(err).__name__})"
            ) from None
        return answer, body


def _read(response: httpx.Response, max_bytes: int | None) -> bytes:
    """The body, or its first max_bytes + 1 bytes (enough to tell it is too large)."""
    if max_bytes is None:
        return response.read()
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            break
    return b"".join(chunks)


def _basic(login: Login) -> dict[str, str]:
    pair = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def _session_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == SESSION_COOKIE:
            return rest.split(";", 1)[0].strip() or None
    return None
