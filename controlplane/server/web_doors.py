"""The web doors part: every environment's HTTPS address, served by one process.

Each environment listens on its own loopback address (environments.naming.webserver_address)
at the server's web port, with a certificate for that address from the data dir's local CA.
An address is opened as soon as its environment exists and closed when it is gone; the
supervisor binds the port on 127.0.0.1 first, which fixes the port (even when 0 was asked for)
for everything that reports hostnames. What each request gets is in controlplane.doors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import time

from aiohttp import web

from controlplane.doors import proxy
from controlplane.doors.airflow_sessions import SignInFailed
from controlplane.doors.certificates import LocalAuthority
from controlplane.doors.cli_door import CliDoor
from controlplane.doors.directory import Door, DoorDirectory
from controlplane.doors.pages import page
from controlplane.doors.web_login import WebLogin
from controlplane.settings import Settings
from environments.airflow.access import AirflowAccess, AirflowUnreachable, NotRunning
from environments.airflow.access.bridge import AirflowRefused
from environments.service import EnvironmentService, RedeemedToken
from environments.store import Store

log = logging.getLogger("airdock.doors")

REFRESH_SECONDS = 1.0
RETRY_BIND_SECONDS = 30.0
CLI_PATH = "/aws_mwaa/cli"
LOGIN_PATH = "/aws_mwaa/aws-console-sso"


def bind_address(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((address, port))
        sock.listen(256)
    except OSError:
        sock.close()
        raise
    return sock


class WebDoors:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._authority = LocalAuthority(settings.data_dir)
        self._db = Store(settings.db_url)
        self._service = EnvironmentService(self._db, settings.placement())
        self.directory = DoorDirectory(settings.data_dir, self._db)
        self._cli = CliDoor(self.directory, self._service)
        self._access = AirflowAccess(settings.data_dir)
        self._login = WebLogin(self._service, lambda: self._session, self._credentials_for)
        self._sites: dict[str, web.SockSite] = {}
        self._bind_failed: dict[str, float] = {}

    def _tls(self, address: str) -> ssl.SSLContext:
        issued = self._authority.server_certificate(address)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(issued.cert, issued.key)
        return context

    async def serve(self, stop: asyncio.Event) -> None:
        app = web.Application(client_max_size=proxy.MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        async with proxy.upstream_session() as session:
            self._session = session
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            self._runner = runner
            try:
                home = web.SockSite(runner, self._sock, ssl_context=self._tls("127.0.0.1"))
                await home.start()
                while not stop.is_set():
                    try:
                        await asyncio.to_thread(self.directory.refresh)
                        await self._open_and_close()
                    except Exception:
                        log.exception("refreshing the web doors failed")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
            finally:
                await runner.cleanup()
                self._access.close()
                self._db.dispose()

    async def _open_and_close(self) -> None:
        wanted = self.directory.doors
        for address in list(self._sites):
            if address not in wanted:
                await self._sites.pop(address).stop()
        for address in wanted:
            if address in self._sites:
                continue
            if time.monotonic() < self._bind_failed.get(address, 0.0):
                continue
            try:
                sock = bind_address(address, self.port)
            except OSError as err:
                log.warning("cannot open %s:%d (%s); trying again later", address, self.port, err)
                self._bind_failed[address] = time.monotonic() + RETRY_BIND_SECONDS
                continue
            site = web.SockSite(self._runner, sock, ssl_context=self._tls(address))
            await site.start()
            self._sites[address] = site

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        local = request.transport.get_extra_info("sockname") if request.transport else None
        door = self.directory.doors.get(local[0]) if local else None
        if door is None:
            return page(404, "404 Not Found", "No Airdock environment answers at this address.")
        if request.path == CLI_PATH:
            return await self._cli.handle(request, door)
        if request.path == LOGIN_PATH:
            return await self._login.handle(request, door)
        return await proxy.forward(request, door, self._session)

    async def _credentials_for(self, door: Door, granted: RedeemedToken) -> tuple[str, str]:
        """The environment's FAB user for the token's minter in the role IAM allowed it
        (made by the identity bridge on first use), as InvokeRestApi uses it."""
        identity = granted.identity.split(":", 5)[5]  # "user/alice", "assumed-role/R/S"
        try:
            login = await asyncio.to_thread(
                self._access.login_for, door.name, identity, granted.airflow_role or "Public"
            )
        except (AirflowRefused, AirflowUnreachable, NotRunning, ValueError) as err:
            raise SignInFailed(str(err)) from None
        return login.username, login.password


def run_web_doors(settings: Settings, sock: socket.socket) -> int:
    """The part's main, in a child of the supervisor."""
    doors = WebDoors(settings, sock)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await doors.serve(stop)

    asyncio.run(main())
    return 0
