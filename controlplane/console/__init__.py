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
from controlplane.progress import runtime_file_health

if TYPE_CHECKING:
    from controlplane.runtime import ApiRuntime


def mount(app: FastAPI, runtime: ApiRuntime) -> None:
    """Serve the console from `app`. A runtime without a data dir (a test's API-only one)
    leaves the sections that need it (DAG checks, logs) empty rather than failing."""
    settings = getattr(runtime, "settings", None)
    data_dir = getattr(settings, "data_dir", None)
    app.state.console = ConsoleContext(
        service=runtime.service,
        gatekeeper=runtime.gatekeeper,
        directory=getattr(runtime, "directory", None),
        data_dir=data_dir,
    )
    if data_dir is not None and getattr(app.state, "component_health", None) is None:
        # The runtime's health file is on this host's disk: API workers read it directly.
        app.state.component_health = runtime_file_health(data_dir)
    app.include_router(router)
