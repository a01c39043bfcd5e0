"""What an environment is doing right now: `GET /_airdock/environments/{name}/progress`.

GetEnvironment says only the status; this says which reconciler step runs, how many are done,
whether the step waits for a retry, and the health of the environment's components. It is
authorized exactly as GetEnvironment (airflow:GetEnvironment on the environment), so a caller
sees the progress of what it may read and nothing else.

Components: `app.state.component_health` is a callable `name -> list of {"Name", "State",
"Detail"}`. By default (set where the console is mounted) it reads what the Airflow runtime
records in the environment's workspace, `state/runtime.json`; anything that knows better may
replace it. Every consumer (`airdock env wait`, the console) shows the list.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from controlplane.deps import Call, reads
from controlplane.security import Intent
from controlplane.wire import json_response
from environments.airflow.runtime.manager import STATUS_FILE as RUNTIME_STATUS_FILE
from environments.lifecycle import Status
from environments.service import EnvironmentService
from environments.workspace import Workspace

router = APIRouter()

ComponentHealth = Callable[[str], list[dict[str, Any]]]


@functools.cache
def step_names() -> tuple[str, ...]:
    from environments.provisioning.plan import default_steps

    return tuple(step.name for step in default_steps())


def step_progress(status: str, progress: dict[str, Any], attempts: int, retry_at: float) -> dict:
    """The reconciler's place in its plan: steps run forward while it provisions and in
    reverse while it deletes; the current step is the first one not yet recorded."""
    names = step_names()
    if status == Status.DELETING.value:
        order, finished = tuple(reversed(names)), set(progress.get("removed", []))
    elif status in (Status.CREATING.value, Status.UPDATING.value, Status.ROLLING_BACK.value):
        order, finished = names, set(progress.get("done", []))
    else:
        return {"Current": None, "Done": len(names), "Total": len(names), "Attempts": 0}
    current = next((name for name in order if name not in finished), None)
    found: dict[str, Any] = {
        "Current": current,
        "Done": sum(1 for name in order if name in finished),
        "Total": len(order),
        "Attempts": attempts,
    }
    if attempts and retry_at > time.time():
        found["RetryInSeconds"] = round(retry_at - time.time(), 1)
    return found


def runtime_file_health(data_dir: Path) -> ComponentHealth:
    """Component health as the Airflow runtime records it in the environment's workspace
    (`state/runtime.json`: {"components": {name: {"state", "restarts", "last_error"}}})."""

    def read(name: str) -> list[dict[str, Any]]:
        status = Workspace.for_environment(data_dir, name).read_json(RUNTIME_STATUS_FILE, None)
        components = (status or {}).get("components") or {}
        if not isinstance(components, dict):
            return []
        found = []
        for component, info in sorted(components.items()):
            info = info if isinstance(info, dict) else {}
            detail = [f"{info['restarts']} restarts"] if info.get("restarts") else []
            if info.get("last_error"):
                detail.append(str(info["last_error"]))
            found.append(
                {"Name": component, "State": str(info.get("state", "unknown")),
                 "Detail": "; ".join(detail)}
            )  # fmt: skip
        return found

    return read


def components_of(request: Request, name: str) -> list[dict[str, Any]]:
    source: ComponentHealth | None = getattr(request.app.state, "component_health", None)
    return list(source(name)) if source is not None else []


def environment_progress(service: EnvironmentService, request: Request, name: str) -> dict:
    row = service.snapshot(name)  # ResourceNotFoundException when it is gone
    return {
        "Name": row.name,
        "Status": row.status,
        "LastUpdate": row.last_update,
        "Step": step_progress(row.status, row.progress, row.attempts, row.next_attempt_at),
        "Components": components_of(request, name),
    }


def _reading(call: Call) -> Intent:
    service = call.service
    name = call.path["name"]
    return Intent(
        "airflow:GetEnvironment",
        service.placement.environment_arn(name),
        resource_tags=lambda: service.resource_tags(name),
    )


@router.get("/_airdock/environments/{name}/progress", include_in_schema=False)
async def get_progress(name: str, call: Annotated[Call, reads(_reading)]) -> Response:
    return json_response(environment_progress(call.service, call.request, name))
