"""The twelve MWAA operations over rest-json (botocore `mwaa`, API 2020-07-01).

Each route: read the raw body -> authenticate -> authorize its Intent -> call the service.
Reads call the service inline (they never wait on a lock); writes run in the thread pool.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from controlplane.deps import GateDep, PlacementDep, ServiceDep
from controlplane.security import Intent
from controlplane.wire import json_response, parse_json_object, query_int, read_body
from environments.service import EnvironmentService

router = APIRouter()


def _tag_context(tags: Any) -> dict[str, str | list[str]]:
    if not isinstance(tags, dict):
        return {}
    context: dict[str, str | list[str]] = {
        f"aws:RequestTag/{k}": str(v) for k, v in tags.items() if isinstance(k, str)
    }
    context["aws:TagKeys"] = [k for k in tags if isinstance(k, str)]
    return context


def _pass_role(params: dict[str, Any]) -> tuple[Intent, ...]:
    role = params.get("ExecutionRoleArn")
    if not isinstance(role, str):
        return ()
    return (
        Intent(
            "iam:PassRole",
            role,
            context={"iam:PassedToService": "airflow.amazonaws.com"},
        ),
    )


def _existing(service: EnvironmentService, name: str):
    return lambda: service.resource_tags(name)


# --- environments -------------------------------------------------------------------------


@router.put("/environments/{name}")
async def create_environment(
    name: str, request: Request, service: ServiceDep, gate: GateDep, place: PlacementDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    params = parse_json_object(body)
    arn = place.environment_arn(name)
    tags = _tag_context(params.get("Tags"))
    # As in MWAA, tagging on create also needs airflow:TagResource on the new environment.
    tagging = (Intent("airflow:TagResource", arn, context=tags),) if params.get("Tags") else ()
    intent = Intent(
        "airflow:CreateEnvironment", arn, context=tags, also=_pass_role(params) + tagging
    )
    await run_in_threadpool(gate.authorize, request, caller, intent)
    return json_response({"Arn": await run_in_threadpool(service.create, name, params)})


@router.get("/environments/{name}")
async def get_environment(
    name: str, request: Request, service: ServiceDep, gate: GateDep, place: PlacementDep
) -> Response:
    caller = gate.authenticate(request, b"")
    intent = Intent(
        "airflow:GetEnvironment",
        place.environment_arn(name),
        resource_tags=_existing(service, name),
    )
    gate.authorize(request, caller, intent)
    return json_response({"Environment": service.get(name)})


@router.patch("/environments/{name}")
async def update_environment(
    name: str, request: Request, service: ServiceDep, gate: GateDep, place: PlacementDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    params = parse_json_object(body)
    intent = Intent(
        "airflow:UpdateEnvironment",
        place.environment_arn(name),
        also=_pass_role(params),
        resource_tags=_existing(service, name),
    )
    await run_in_threadpool(gate.authorize, request, caller, intent)
    arn = await run_in_threadpool(service.update, name, params)
    return json_response({"Arn": arn})


@router.delete("/environments/{name}")
async def delete_environment(
    name: str, request: Request, service: ServiceDep, gate: GateDep, place: PlacementDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    intent = Intent(
        "airflow:DeleteEnvironment",
        place.environment_arn(name),
        resource_tags=_existing(service, name),
    )
    await run_in_threadpool(gate.authorize, request, caller, intent)
    await run_in_threadpool(service.delete, name)
    return json_response({})


@router.get("/environments")
async def list_environments(request: Request, service: ServiceDep, gate: GateDep) -> Response:
    caller = gate.authenticate(request, b"")
    gate.authorize(request, caller, Intent("airflow:ListEnvironments", "*"))
    names, token = service.list(
        query_int(request, "MaxResults"), request.query_params.get("NextToken")
    )
    payload: dict[str, Any] = {"Environments": names}
    if token:
        payload["NextToken"] = token
    return json_response(payload)


# --- tags ---------------------------------------------------------------------------------


def _tag_target(service: EnvironmentService, arn: str):
    def fetch() -> dict[str, str] | None:
        try:
            return service.resource_tags(service.placement.name_from_arn(arn))
        except Exception:  # a malformed ARN has no tags; the service reports it properly
            return None

    return fetch


@router.post("/tags/{arn:path}")
async def tag_resource(arn: str, request: Request, service: ServiceDep, gate: GateDep) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    params = parse_json_object(body)
    intent = Intent(
        "airflow:TagResource",
        arn,
        context=_tag_context(params.get("Tags")),
        resource_tags=_tag_target(service, arn),
    )
    await run_in_threadpool(gate.authorize, request, caller, intent)
    await run_in_threadpool(service.tag, arn, params)
    return json_response({})


@router.get("/tags/{arn:path}")
async def list_tags(arn: str, request: Request, service: ServiceDep, gate: GateDep) -> Response:
    caller = gate.authenticate(request, b"")
    intent = Intent("airflow:ListTagsForResource", arn, resource_tags=_tag_target(service, arn))
    gate.authorize(request, caller, intent)
    return json_response({"Tags": service.list_tags(arn)})


@router.delete("/tags/{arn:path}")
async def untag_resource(
    arn: str, request: Request, service: ServiceDep, gate: GateDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    keys = request.query_params.getlist("tagKeys")
    intent = Intent(
        "airflow:UntagResource",
        arn,
        context={"aws:TagKeys": keys},
        resource_tags=_tag_target(service, arn),
    )
    await run_in_threadpool(gate.authorize, request, caller, intent)
    await run_in_threadpool(service.untag, arn, keys)
    return json_response({})


# --- tokens and the data plane ------------------------------------------------------------


@router.post("/clitoken/{name}")
async def create_cli_token(
    name: str, request: Request, service: ServiceDep, gate: GateDep, place: PlacementDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    intent = Intent(
        "airflow:CreateCliToken",
        place.environment_arn(name),
        resource_tags=_existing(service, name),
    )
    await run_in_threadpool(gate.authorize, request, caller, intent)
    return json_response(await run_in_threadpool(service.create_cli_token, name, caller))


@router.post("/webtoken/{name}")
async def create_web_login_token(
    name: str, request: Request, service: ServiceDep, gate: GateDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    role = await run_in_threadpool(
        gate.airflow_role, request, caller, name, "airflow:CreateWebLoginToken"
    )
    result = await run_in_threadpool(service.create_web_login_token, name, caller, role)
    return json_response(result)


@router.post("/restapi/{name}")
async def invoke_rest_api(
    name: str, request: Request, service: ServiceDep, gate: GateDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    params = parse_json_object(body)
    await run_in_threadpool(gate.airflow_role, request, caller, name, "airflow:InvokeRestApi")
    return json_response(await run_in_threadpool(service.invoke_rest_api, name, params))


@router.post("/metrics/environments/{name}")
async def publish_metrics(
    name: str, request: Request, service: ServiceDep, gate: GateDep, place: PlacementDep
) -> Response:
    body = await read_body(request)
    caller = gate.authenticate(request, body)
    params = parse_json_object(body)
    intent = Intent("airflow:PublishMetrics", place.environment_arn(name))
    await run_in_threadpool(gate.authorize, request, caller, intent)
    await run_in_threadpool(service.publish_metrics, name, params)
    return json_response({})
