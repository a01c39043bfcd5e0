"""Forward a request to the environment's Airflow web/API server and stream its answer back.

The Host header is kept, and X-Forwarded-* say the browser came over HTTPS: Airflow's links and
redirects then point at the HTTPS address. The proxy keeps no cookies of its own (every
browser's session stays the browser's) and passes bodies through undecoded.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from controlplane.doors.directory import Door
from controlplane.doors.pages import page, unavailable

# Headers that describe one connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Airflow 2's REST API challenges a request without a session to basic auth (the control plane
# signs in that way with passwords only it knows). Passed on, the challenge would make a browser
# ask its user for a password that is of no use to them, and stall the page's request meanwhile.
DROPPED_FROM_ANSWERS = HOP_BY_HOP | {"www-authenticate"}
MAX_BODY_BYTES = 64 * 1024 * 1024
AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


def upstream_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=600),
    )


def forwarded_headers(request: web.Request) -> list[tuple[str, str]]:
    headers = [
        (key, value)
        for key, value in request.headers.items()
        if key.lower() not in HOP_BY_HOP
        and key.lower() != "content-length"  # the client library sets it for the body sent
        and not key.lower().startswith("x-forwarded-")
    ]
    peer = request.remote or ""
    headers += [
        ("X-Forwarded-For", peer),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", request.host),
    ]
    return headers


async def forward(
    request: web.Request, door: Door, session: aiohttp.ClientSession
) -> web.StreamResponse:
    if door.upstream is None:
        return unavailable(door.name)
    body = await request.read() if request.body_exists else None
    if body is not None and len(body) > MAX_BODY_BYTES:
        return page(413, "413 Content Too Large", "The request body is too large.")
    try:
        upstream = await session.request(
            request.method,
            door.upstream + request.raw_path,
            headers=forwarded_headers(request),
            data=body,
            allow_redirects=False,
            # Only what the client sent: no compression it did not ask for, no user agent.
            skip_auto_headers=AUTO_HEADERS,
        )
    except (aiohttp.ClientConnectionError, TimeoutError):
        return unavailable(door.name)
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in DROPPED_FROM_ANSWERS:
                response.headers.add(key, value)
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(64 * 1024):
            await response.write(chunk)
        await response.write_eof()
        return response
