"""`POST /aws_mwaa/cli`: a CLI token holder runs one allowed Airflow CLI command.

As on MWAA: `Authorization: Bearer <CliToken>`, the command (without `airflow`) as the text
body, and `{"stdout": <base64>, "stderr": <base64>}` back. A token is good for its 60 seconds
(not used up by a command); a missing, forged or expired one gets 403. A command outside the
allow-list gets HTTP 500, as MWAA answers it. Commands of one environment run one at a time:
a second waits for the first.
"""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from controlplane.doors.directory import Door, DoorDirectory
from controlplane.doors.pages import SECURITY_HEADERS, unavailable
from environments.airflow.runtime import cli
from environments.service import EnvironmentService

MAX_COMMAND_BYTES = 64 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _answer(status: int, stdout: bytes = b"", stderr: bytes = b"") -> web.Response:
    return web.json_response(
        {"stdout": _b64(stdout), "stderr": _b64(stderr)}, status=status, headers=SECURITY_HEADERS
    )


def bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class CliDoor:
    def __init__(self, directory: DoorDirectory, service: EnvironmentService) -> None:
        self._directory = directory
        self._service = service
        self._locks: dict[str, asyncio.Lock] = {}

    async def handle(self, request: web.Request, door: Door) -> web.Response:
        if request.method != "POST":
            return web.json_response(
                {"message": "Use POST."}, status=405, headers={"Allow": "POST"}
            )
        token = bearer_token(request)
        granted = (
            await asyncio.to_thread(
                self._service.redeem_token, token, "cli", door.name, single_use=False
            )
            if token
            else None
        )
        if granted is None:
            return web.json_response(
                {"message": "The CLI token is missing, invalid or expired."},
                status=403,
                headers=SECURITY_HEADERS,
            )
        raw = await request.content.read(MAX_COMMAND_BYTES + 1)
        if len(raw) > MAX_COMMAND_BYTES:
            return _answer(400, stderr=b"The command is too long.\n")
        if door.upstream is None or door.airflow_version is None:
            return unavailable(door.name)
        try:
            args = cli.parse(raw.decode("utf-8", "replace"), door.airflow_version)
        except cli.CommandRefused as refused:
            return _answer(500, stderr=f"{refused}\n".encode())
        lock = self._locks.setdefault(door.name, asyncio.Lock())
        async with lock:
            try:
                result = await asyncio.to_thread(
                    cli.run_command, self._directory.workspace(door), args
                )
            except cli.NotRunning:
                return unavailable(door.name)
        return _answer(200, result.stdout, result.stderr)
