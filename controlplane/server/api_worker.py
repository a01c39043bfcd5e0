"""An API worker: uvicorn serving the prepared app on the socket the supervisor bound.

Every worker accepts on the same listening socket; the kernel hands each new connection to one
of them. Each response names the worker that served it (WORKER_HEADER), which lets tests and
operators tell the workers apart. uvicorn adds the header itself, at no cost per request.

The parts of uvicorn a worker loads when it starts are imported here, in the supervisor, so the
workers share them; WebSockets, which no route uses, are not loaded at all.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
import uvicorn.lifespan.on
import uvicorn.loops.asyncio

from controlplane.http_limits import uvicorn_options

WORKER_HEADER = "x-airdock-api-worker"
GRACEFUL_SECONDS = 5


def serve_api(app: Any, sock: socket.socket, worker: str, request_timeout: float) -> int:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        headers=[(WORKER_HEADER, worker)],
        ws="none",
        **uvicorn_options(request_timeout),
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
