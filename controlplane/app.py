"""The FastAPI application an API worker serves: routes, error mapping and health."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from controlplane import api, console, progress
from controlplane.errors import UnknownOperationException, error_response
from environments.errors import AirdockError, InternalServerException

if TYPE_CHECKING:
    from controlplane.runtime import ApiRuntime

log = logging.getLogger(__name__)


def create_app(runtime: ApiRuntime) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            runtime.stop()

    app = FastAPI(
        title="Airdock",
        description="An Amazon MWAA-compatible control plane",
        lifespan=lifespan,
        openapi_url="/_airdock/openapi.json",
        docs_url=None,
        redoc_url=None,
        # AWS answers a trailing slash with an error, not a redirect a client would follow.
        redirect_slashes=False,
    )
    app.state.service = runtime.service
    app.state.gatekeeper = runtime.gatekeeper
    app.state.ready = False
    app.include_router(api.router)
    app.include_router(progress.router)
    console.mount(app, runtime)

    @app.get("/_airdock/health", include_in_schema=False)
    async def health(request: Request) -> Response:
        # Healthy when this worker serves and every supervised part (the embedded AWS, the
        # background worker, each API worker) is up; the body names each part's state.
        healthy, body = runtime.health()
        if not request.app.state.ready:
            healthy, body = False, {**body, "status": "starting"}
        return JSONResponse(body, 200 if healthy else 503)

    @app.exception_handler(AirdockError)
    async def domain_error(request: Request, err: AirdockError) -> Response:
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        if err.status_code == 405:
            message = f"{request.method} is not supported on {request.url.path}."
        else:
            message = f"No operation matches {request.method} {request.url.path}."
        return error_response(UnknownOperationException(message))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(InternalServerException("An internal error occurred."))

    return app
