"""What the console's pages show, each part gathered only where the caller's policies allow."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from starlette.requests import Request

from controlplane.console.context import ConsoleContext
from controlplane.progress import components_of, step_progress
from controlplane.security import Intent
from controlplane.waiting import error_text
from environments.contents.dag_reports import REPORT
from environments.errors import ResourceNotFoundException
from environments.service import Requester
from environments.workspace import Workspace

log = logging.getLogger(__name__)

LOG_LINES = 20


def environment_rows(ctx: ConsoleContext, request: Request, who: Requester) -> list[dict]:
    """One row per environment the caller may read (AccessDeniedException when it may not
    list environments at all)."""
    ctx.require(request, who, Intent("airflow:ListEnvironments", "*"))
    names: list[str] = []
    token = None
    while True:
        page, token = ctx.service.list(None, token)
        names += page
        if not token:
            break
    rows = []
    for name in names:
        if not ctx.allowed(request, who, ctx.on_environment("airflow:GetEnvironment", name)):
            continue
        try:
            rows.append(summary(ctx, name))
        except ResourceNotFoundException:
            continue  # deleted since it was listed
    return rows


def summary(ctx: ConsoleContext, name: str) -> dict[str, Any]:
    env = ctx.service.get(name)
    row = ctx.service.snapshot(name)
    return {
        "name": name,
        "status": env["Status"],
        "version": env.get("AirflowVersion", ""),
        "env_class": env.get("EnvironmentClass", ""),
        "min_workers": env.get("MinWorkers"),
        "max_workers": env.get("MaxWorkers"),
        "error": error_text(env.get("LastUpdate")),
        "step": step_progress(row.status, row.progress, row.attempts, row.next_attempt_at),
        "tags": env.get("Tags") or {},
        "webserver_url": env.get("WebserverUrl"),
        "logging": env.get("LoggingConfiguration") or {},
    }


def permissions(ctx: ConsoleContext, request: Request, who: Requester, name: str) -> dict:
    return {
        "can_update": ctx.allowed(
            request, who, ctx.on_environment("airflow:UpdateEnvironment", name)
        ),
        "can_delete": ctx.allowed(
            request, who, ctx.on_environment("airflow:DeleteEnvironment", name)
        ),
    }


def dag_report(ctx: ConsoleContext, name: str) -> dict | None:
    if ctx.data_dir is None:
        return None
    return Workspace.for_environment(ctx.data_dir, name).read_json(REPORT, None)


def log_tails(
    ctx: ConsoleContext, request: Request, who: Requester, env: dict[str, Any]
) -> list[dict[str, Any]]:
    """The last lines of each of the environment's log groups the caller may read
    (logs:FilterLogEvents on the group, which carries the environment's tags)."""
    tails = []
    tags = env["tags"]
    for module, config in sorted(env["logging"].items()):
        arn = config.get("CloudWatchLogGroupArn")
        if not arn:
            continue
        group = arn.split(":log-group:", 1)[-1].removesuffix(":*")
        entry: dict[str, Any] = {"module": module, "group": group, "lines": [], "note": None}
        intent = Intent("logs:FilterLogEvents", arn.removesuffix(":*"), resource_tags=lambda: tags)
        if not ctx.allowed(request, who, intent):
            entry["note"] = "Your policies do not allow logs:FilterLogEvents on this group."
        elif ctx.aws is None:
            entry["note"] = "No AWS endpoint to read logs from."
        else:
            entry["lines"] = _tail(ctx, group)
        tails.append(entry)
    return tails


def _tail(ctx: ConsoleContext, group: str) -> list[str]:
    assert ctx.aws is not None
    try:
        events = ctx.aws.client("logs").filter_log_events(logGroupName=group, limit=1000)
    except (ClientError, BotoCoreError) as err:
        log.info("cannot read log group %s: %s", group, err)
        return [f"(cannot read this group: {err})"]
    lines = [f"{e.get('logStreamName', '')}: {e['message']}" for e in events.get("events", [])]
    return lines[-LOG_LINES:]


def components(request: Request, name: str) -> list[dict[str, Any]]:
    return components_of(request, name)
