"""The doors' proxy passes Airflow's answers through, minus what a browser must not see."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.doors.directory import Door
from controlplane.doors.proxy import forward, upstream_session


def airflow_like() -> web.Application:
    async def dags(request: web.Request) -> web.Response:
        return web.json_response(
            {"title": "Unauthorized", "seen_proto": request.headers.get("X-Forwarded-Proto")},
            status=401,
            headers={"WWW-Authenticate": "Basic", "X-Robots-Tag": "noindex"},
        )

    app = web.Application()
    app.router.add_get("/api/v1/dags", dags)
    return app


async def through_the_proxy(path: str) -> tuple[int, dict[str, str], dict]:
    upstream = TestServer(airflow_like(), host="127.0.0.1")
    await upstream.start_server()
    session = upstream_session()
    door = Door("demo", "127.1.2.3", "AVAILABLE", upstream.port, "2.10.3")

    async def handler(request: web.Request) -> web.StreamResponse:
        return await forward(request, door, session)

    front = web.Application()
    front.router.add_route("*", "/{tail:.*}", handler)
    client = TestClient(TestServer(front, host="127.0.0.1"))
    await client.start_server()
    try:
        answer = await client.get(path)
        return answer.status, dict(answer.headers), await answer.json()
    finally:
        await client.close()
        await session.close()
        await upstream.close()


def test_a_basic_auth_challenge_never_reaches_the_browser():
    status, headers, body = asyncio.run(through_the_proxy("/api/v1/dags"))
    assert status == 401  # Airflow's answer itself is passed on
    assert "WWW-Authenticate" not in headers  # no password prompt for Airflow's own users
    assert headers["X-Robots-Tag"] == "noindex"
    assert body["seen_proto"] == "https"
