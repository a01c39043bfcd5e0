"""GetEnvironment and ListEnvironments, the calls that clients and waiters poll, served around
FastAPI.

FastAPI's routing, its middleware stack and its dependency solving cost an API worker more CPU
per GetEnvironment than the operation's own work (signature, policy, store read and JSON).
`HotReads` wraps the application an API worker serves: a `GET /environments/{name}` or
`GET /environments` goes straight to the steps its route takes (`deps.read_call`, then
`api.environment_answer` or `api.list_answer`) and to the same error mapping; everything else,
HEAD and a path that is not exactly one name included, goes to FastAPI as before.
tests/controlplane/test_api_routes.py holds both to the same bytes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request

from controlplane import api
from controlplane.deps import read_call
from controlplane.errors import error_response
from environments.errors import AirdockError, InternalServerException

log = logging.getLogger(__name__)

PREFIX = "/environments/"
LIST_PATH = "/environments"
LIST = ""  # what `target` gives for ListEnvironments


def target(scope: dict[str, Any]) -> str | None:
    """For a GetEnvironment request, the name it asks for (matched as the route's `{name}` is:
    one non-empty path segment, after percent-decoding); LIST for ListEnvironments; None for
    any other request."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path: str = scope["path"]
    if path == LIST_PATH:
        return LIST
    if not path.startswith(PREFIX):
        return None
    name = path[len(PREFIX) :]
    return name if name and "/" not in name else None


class HotReads:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = target(scope)
        if name is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Request.app, and so the gatekeeper's lookup, reads
        scope["path_params"] = {"name": name} if name else {}
        request = Request(scope, receive)
        try:
            if name:
                call = read_call(request, api.GET_ENVIRONMENT)
                response = api.environment_answer(call, name)
            else:
                response = api.list_answer(read_call(request, api.LIST_ENVIRONMENTS))
        except AirdockError as err:
            response = error_response(err)
        except Exception:
            log.exception("unhandled error in GET %s", scope["path"])
            response = error_response(InternalServerException("An internal error occurred."))
        await response(scope, receive, send)
