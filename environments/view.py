"""How a stored environment looks to GetEnvironment: MWAA's `Environment` shape."""

from __future__ import annotations

from typing import Any

from environments.naming import Placement
from environments.spec import LOG_MODULES
from environments.store import EnvironmentRow

# Members that only requests carry; they never appear in the Environment shape.
_REQUEST_ONLY = frozenset({"WorkerReplacementStrategy"})


def describe(row: EnvironmentRow, placement: Placement) -> dict[str, Any]:
    spec = row.spec
    env: dict[str, Any] = {k: v for k, v in spec.items() if k not in _REQUEST_ONLY}
    env.update(
        Name=row.name,
        Arn=row.arn,
        Status=row.status,
        CreatedAt=row.created_at,
        ServiceRoleArn=placement.service_role_arn(),
        LastUpdate=row.last_update,
    )
    if row.tags:
        env["Tags"] = dict(row.tags)
    env["LoggingConfiguration"] = _logging(spec.get("LoggingConfiguration") or {}, row.resources)
    endpoints = row.resources.get("endpoints") or {}
    if "webserver_hostname" in endpoints:
        env["WebserverUrl"] = f"https://{endpoints['webserver_hostname']}"
    for key in ("WebserverVpcEndpointService", "DatabaseVpcEndpointService"):
        if key in endpoints:
            env[key] = endpoints[key]
    queue = row.resources.get("celery_queue") or {}
    if "arn" in queue:
        env["CeleryExecutorQueue"] = queue["arn"]
    return env


def _logging(config: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    groups = resources.get("log_groups") or {}
    out: dict[str, Any] = {}
    for module in LOG_MODULES:
        settings = config.get(module)
        if settings is None:
            continue
        entry = {"Enabled": bool(settings.get("Enabled")), "LogLevel": settings.get("LogLevel")}
        if entry["Enabled"] and module in groups:
            entry["CloudWatchLogGroupArn"] = groups[module]
        out[module] = entry
    return out
