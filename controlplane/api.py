"""The twelve MWAA operations over rest-json (botocore `mwaa`, API 2020-07-01).

Each route states its operation (method and path), its Intent and its service call; the
dependency it declares (controlplane.deps) reads, authenticates and authorizes first. Read
routes are `async def` and run on the event loop; write routes are plain `def`, which FastAPI
runs in the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from controlplane.deps import AirflowCall, Call, IntentOf, acts_in_airflow, reads, writes
from controlplane.security import Intent
from controlplane.wire import json_response, query_int
from environments.errors import ResourceNotFoundException, ValidationException

router = APIRouter()

# --- intents ------------------------------------------------------------------------------


def _tag_context(tags: Any) -> dict[str, str | list[str]]:
    if not isinstance(tags, dict):
        return {}
    context: dict[str, str | list[str]] = {
        f"aws:RequestTag/{k}": str(v) for k, v in tags.items() if isinstance(k, str)
    }
    context["aws:TagKeys"] = [k for k in tags if isinstance(k, str)]
    return context


def _pass_role(call: Call) -> tuple[Intent, ...]:
    role = call.params.get("ExecutionRoleArn")
    if not isinstance(role, str):
        return ()
    return (Intent("iam:PassRole", role, context={"iam:PassedToService": "airflow.amazonaws.com"}),)


def _target(call: Call) -> str:
    """The ARN an operation acts on: the path's ARN, or that of the environment it names."""
    arn = call.path.get("arn")
    return arn if arn is not None else call.service.placement.environment_arn(call.path["name"])


def _tags_of(call: Call, arn: str) -> Callable[[], dict[str, str] | None]:
    """The target's tags, fetched only if a policy reads aws:ResourceTag. The row read for
    them stays on the call: a read operation then answers from it (one read per call)."""

    def fetch() -> dict[str, str] | None:
        try:
            name = call.service.placement.name_from_arn(arn)
        except (ValidationException, ResourceNotFoundException):
            return None  # not an environment of this endpoint; the service says so properly
        row = call.service.find(name)
        call.target_row = row
        call.seen_tags = dict(row.tags) if row is not None else None
        return call.seen_tags

    return fetch


def _existing(
    action: str,
    *,
    context: Callable[[Call], dict[str, str | list[str]]] = lambda call: {},
    also: Callable[[Call], tuple[Intent, ...]] = lambda call: (),
) -> IntentOf:
    """`action` on an existing environment, whose tags policies may read."""

    def intent(call: Call) -> Intent:
        arn = _target(call)
        return Intent(
            action, arn, context=context(call), also=also(call), resource_tags=_tags_of(call, arn)
        )

    return intent


def _create(call: Call) -> Intent:
    arn = _target(call)
    tags = _tag_context(call.params.get("Tags"))
    # As in MWAA, tagging on create also needs airflow:TagResource on the new environment.
    tagging = (Intent("airflow:TagResource", arn, context=tags),) if call.params.get("Tags") else ()
    return Intent("airflow:CreateEnvironment", arn, context=tags, also=_pass_role(call) + tagging)


def _list(call: Call) -> Intent:
    return Intent("airflow:ListEnvironments", "*")


LIST_ENVIRONMENTS: IntentOf = _list


def _tag_keys(call: Call) -> list[str]:
    return call.request.query_params.getlist("tagKeys")


def _tagging(call: Call) -> dict[str, str | list[str]]:
    return _tag_context(call.params.get("Tags"))


def _untagging(call: Call) -> dict[str, str | list[str]]:
    return {"aws:TagKeys": _tag_keys(call)}


# --- environments -------------------------------------------------------------------------


@router.put("/environments/{name}")
def create_environment(name: str, call: Annotated[Call, writes(_create)]) -> Response:
    return json_response({"Arn": call.service.create(name, call.params)})


GET_ENVIRONMENT = _existing("airflow:GetEnvironment")


def environment_answer(call: Call, name: str) -> Response:
    """GetEnvironment's answer, for this route and for controlplane.hot_reads alike."""
    return json_response({"Environment": call.service.get(name, call.target_row)})


@router.get("/environments/{name}")
async def get_environment(name: str, call: Annotated[Call, reads(GET_ENVIRONMENT)]) -> Response:
    return environment_answer(call, name)


@router.patch("/environments/{name}")
def update_environment(
    name: str,
    call: Annotated[Call, writes(_existing("airflow:UpdateEnvironment", also=_pass_role))],
) -> Response:
    return json_response({"Arn": call.service.update(name, call.params, call.tag_guard())})


@router.delete("/environments/{name}")
def delete_environment(
    name: str, call: Annotated[Call, writes(_existing("airflow:DeleteEnvironment"))]
) -> Response:
    call.service.delete(name, call.tag_guard())
    return json_response({})


def list_answer(call: Call) -> Response:
    """ListEnvironments' answer, for this route and for controlplane.hot_reads alike."""
    request = call.request
    names, token = call.service.list(
        query_int(request, "MaxResults"), request.query_params.get("NextToken")
    )
    payload: dict[str, Any] = {"Environments": names}
    if token:
        payload["NextToken"] = token
    return json_response(payload)


@router.get("/environments")
async def list_environments(call: Annotated[Call, reads(LIST_ENVIRONMENTS)]) -> Response:
    return list_answer(call)


# --- tags ---------------------------------------------------------------------------------


@router.post("/tags/{arn:path}")
def tag_resource(
    arn: str, call: Annotated[Call, writes(_existing("airflow:TagResource", context=_tagging))]
) -> Response:
    call.service.tag(arn, call.params, call.tag_guard())
    return json_response({})


@router.get("/tags/{arn:path}")
async def list_tags(
    arn: str, call: Annotated[Call, reads(_existing("airflow:ListTagsForResource"))]
) -> Response:
    return json_response({"Tags": call.service.list_tags(arn, call.target_row)})


@router.delete("/tags/{arn:path}")
def untag_resource(
    arn: str, call: Annotated[Call, writes(_existing("airflow:UntagResource", context=_untagging))]
) -> Response:
    call.service.untag(arn, _tag_keys(call), call.tag_guard())
    return json_response({})


# --- tokens and the data plane ------------------------------------------------------------


@router.post("/clitoken/{name}")
def create_cli_token(
    name: str, call: Annotated[Call, writes(_existing("airflow:CreateCliToken"))]
) -> Response:
    return json_response(call.service.create_cli_token(name, call.requester))


@router.post("/webtoken/{name}")
def create_web_login_token(
    name: str, call: Annotated[AirflowCall, acts_in_airflow("airflow:CreateWebLoginToken")]
) -> Response:
    token = call.service.create_web_login_token(name, call.requester, call.airflow_role)
    return json_response(token)


@router.post("/restapi/{name}")
def invoke_rest_api(
    name: str, call: Annotated[AirflowCall, acts_in_airflow("airflow:InvokeRestApi")]
) -> Response:
    answer = call.service.invoke_rest_api(name, call.params, call.requester, call.airflow_role)
    return json_response(answer)


@router.post("/metrics/environments/{name}")
def publish_metrics(
    name: str, call: Annotated[Call, writes(_existing("airflow:PublishMetrics"))]
) -> Response:
    call.service.publish_metrics(name, call.params)
    return json_response({})
