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
    settings = runtime.settings
    embedded = runtime.embedded_aws is not None
    aws = None
    if runtime.aws_endpoint is not None or settings.real_aws:
        aws = AwsClients(
            AwsTarget(
                region=settings.region,
                endpoint_url=runtime.aws_endpoint,
                access_key_id=runtime.admin.access_key_id if embedded else None,
                secret_access_key=runtime.admin.secret_access_key if embedded else None,
            )
        )
    app.state.console = ConsoleContext(
        service=runtime.service,
        gatekeeper=runtime.gatekeeper,
        directory=runtime.directory,
        admin=runtime.admin,
        data_dir=settings.data_dir,
        aws=aws,
    )
    app.include_router(router)
