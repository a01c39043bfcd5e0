"""`/console/...`: sign-in, the environment list and an environment's page and actions."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from controlplane.console import sessions, views
from controlplane.console.pages import (
    checked_post,
    context,
    env_path,
    error_page,
    forbidden,
    form,
    in_thread,
    render,
    to_sign_in,
    visitor,
)
from environments.errors import AirdockError, ValidationException

router = APIRouter(prefix=sessions.PATH, include_in_schema=False)


# --- signing in and out ---------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    token = secrets.token_urlsafe(24)
    page = render("sign_in.html", csrf=token, error=None)
    page.set_cookie(sessions.LOGIN_COOKIE, token, **sessions.cookie_options(600))
    return page


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    fields = await form(request)
    expected = request.cookies.get(sessions.LOGIN_COOKIE)
    if not expected or not secrets.compare_digest(expected, fields.get("csrf", "")):
        return forbidden()
    ctx = context(request)
    key_id = fields.get("access_key_id", "").strip()
    ends = await in_thread(
        ctx.sign_in, key_id, fields.get("secret_access_key", ""), fields.get("session_token")
    )
    if ends is None:
        page = render(
            "sign_in.html", 401, csrf=expected, error="The access key or secret is not valid."
        )
        return page
    response = RedirectResponse(sessions.PATH, 303)
    cookie = sessions.issue(ctx.session_key, key_id, ends)
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        secure=request.url.scheme == "https",
        **sessions.cookie_options(max(1, int(ends - time.time()))),
    )
    response.delete_cookie(sessions.LOGIN_COOKIE, path=sessions.PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    _, _, refused = await checked_post(request)
    if refused is not None:
        return refused
    response = RedirectResponse(f"{sessions.PATH}/sign-in", 303)
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response


# --- the list -------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def environment_list(request: Request) -> Response:
    return await _rows_page(request, "list.html")


@router.get("/fragments/environments")
async def environment_rows(request: Request) -> Response:
    """The list's rows alone: what the page fetches to stay current."""
    return await _rows_page(request, "rows.html")


async def _rows_page(request: Request, template: str) -> Response:
    me = visitor(request)
    if me is None:
        return to_sign_in(request)
    try:
        rows = await in_thread(views.environment_rows, context(request), request, me.who)
    except AirdockError as err:
        return error_page(err, me)
    return render(template, me=me, rows=rows)


# --- one environment ------------------------------------------------------------------------


def _environment_view(request: Request, me, name: str, with_details: bool) -> dict:
    ctx = context(request)
    ctx.require(request, me.who, ctx.on_environment("airflow:GetEnvironment", name))
    env = views.summary(ctx, name)
    found = {"env": env, "components": views.components(request, name)}
    if with_details:
        found.update(
            may=views.permissions(ctx, request, me.who, name),
            report=views.dag_report(ctx, name),
            logs=views.log_tails(ctx, request, me.who, env),
        )
    return found


@router.get("/environments/{name}")
async def environment_page(request: Request, name: str) -> Response:
    me = visitor(request)
    if me is None:
        return to_sign_in(request)
    try:
        view = await in_thread(_environment_view, request, me, name, True)
    except AirdockError as err:
        return error_page(err, me, back=sessions.PATH)
    notice = request.query_params.get("notice")
    return render("environment.html", me=me, notice=notice, error=None, **view)


@router.get("/environments/{name}/fragments/status")
async def environment_status(request: Request, name: str) -> Response:
    me = visitor(request)
    if me is None:
        return to_sign_in(request)
    try:
        view = await in_thread(_environment_view, request, me, name, False)
    except AirdockError as err:
        return error_page(err, me)
    return render("status.html", **view)


def _workers(fields: dict[str, str]) -> dict[str, int]:
    params = {}
    for field, member in (("min_workers", "MinWorkers"), ("max_workers", "MaxWorkers")):
        raw = fields.get(field, "").strip()
        if not raw.isdigit():
            raise ValidationException(f"{member} must be a whole number, not {raw!r}.")
        params[member] = int(raw)
    return params


@router.post("/environments/{name}/workers")
async def update_workers(request: Request, name: str) -> Response:
    me, fields, refused = await checked_post(request)
    if refused is not None:
        return refused
    ctx = context(request)

    def act() -> None:
        params = _workers(fields)
        ctx.require(request, me.who, ctx.on_environment("airflow:UpdateEnvironment", name))
        ctx.service.update(name, params)

    try:
        await in_thread(act)
    except AirdockError as err:
        return error_page(err, me, back=env_path(name))
    return RedirectResponse(f"{env_path(name)}?notice=workers", 303)


@router.post("/environments/{name}/delete")
async def delete_environment(request: Request, name: str) -> Response:
    me, fields, refused = await checked_post(request)
    if refused is not None:
        return refused
    ctx = context(request)

    def act() -> None:
        if fields.get("confirm_name") != name:
            raise ValidationException(f"Type the environment's name, {name}, to delete it.")
        ctx.require(request, me.who, ctx.on_environment("airflow:DeleteEnvironment", name))
        ctx.service.delete(name)

    try:
        await in_thread(act)
    except AirdockError as err:
        return error_page(err, me, back=env_path(name))
    return RedirectResponse(sessions.PATH, 303)


@router.post("/environments/{name}/airflow-ui")
async def open_airflow_ui(request: Request, name: str) -> Response:
    me, _, refused = await checked_post(request)
    if refused is not None:
        return refused
    ctx = context(request)

    def act() -> dict:
        role = ctx.gatekeeper.airflow_role(request, me.who, name, "airflow:CreateWebLoginToken")
        token = ctx.service.create_web_login_token(name, me.who, role)
        return {**token, "AirflowRole": role}

    try:
        token = await in_thread(act)
    except AirdockError as err:
        return error_page(err, me, back=env_path(name))
    url = (
        f"https://{token['WebServerHostname']}/aws_mwaa/aws-console-sso?login=true"
        f"#{token['WebToken']}"
    )
    return render("airflow_link.html", me=me, name=name, url=url, role=token["AirflowRole"])
