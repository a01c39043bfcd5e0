"""The web console at /console: environments, their progress, logs and DAG checks, and the
actions a signed-in principal's policies allow. Server-rendered (Jinja2), a few lines of
script for live updates, no build step.

`mount(app, runtime)` is all the application does to serve it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from controlplane.console.context import ConsoleContext
from controlplane.console.routes import router
from environments.aws.clients import AwsClients, AwsTarget

if TYPE_CHECKING:
    from controlplane.runtime import Runtime


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Serve the console from `app`. Parts a runtime lacks (a test's API-only runtime has no
    AWS or data dir) leave the matching sections empty rather than failing."""
    app.state.console = ConsoleContext(
        service=runtime.service,
        gatekeeper=runtime.gatekeeper,
        directory=getattr(runtime, "directory", None),
        admin=getattr(runtime, "admin", None),
        data_dir=getattr(getattr(runtime, "settings", None), "data_dir", None),
        aws=_log_reader(runtime),
    )
    app.include_router(router)


def _log_reader(runtime: Runtime) -> AwsClients | None:
    settings = getattr(runtime, "settings", None)
    endpoint = getattr(runtime, "aws_endpoint", None)
    if settings is None or (endpoint is None and not settings.real_aws):
        return None
    embedded = runtime.embedded_aws is not None
    return AwsClients(
        AwsTarget(
            region=settings.region,
            endpoint_url=endpoint,
            access_key_id=runtime.admin.access_key_id if embedded else None,
            secret_access_key=runtime.admin.secret_access_key if embedded else None,
        )
    )
