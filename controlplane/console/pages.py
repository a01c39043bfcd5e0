"""The console's routes: server-rendered pages, two live fragments and four form actions.

Every page needs a session; every form needs the session's CSRF token; every read and action
is authorized by the API's gatekeeper as the signed-in principal. A refused or invalid action
changes nothing and shows the same AWS-style message the API would return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from controlplane.console import sessions
from controlplane.console.context import ConsoleContext
from environments.errors import AirdockError
from environments.service import Requester

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
MAX_FORM_BYTES = 16 * 1024
# Pages hold form tokens: never cached, never framed (clickjacking), no referrer elsewhere.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def context(request: Request) -> ConsoleContext:
    return request.app.state.console


def render(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**values)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


class Visitor:
    """A signed-in caller: its session, principal and CSRF token."""

    def __init__(self, ctx: ConsoleContext, session: sessions.Session, who: Requester) -> None:
        self.session = session
        self.who = who
        self.csrf = sessions.csrf_token(ctx.session_key, session)

    @property
    def identity(self) -> str:
        return self.who.iam_identity


def visitor(request: Request) -> Visitor | None:
    ctx = context(request)
    session = sessions.read(ctx.session_key, request.cookies.get(sessions.COOKIE))
    if session is None:
        return None
    who = ctx.requester(request, session)
    return Visitor(ctx, session, who) if who is not None else None


def to_sign_in(request: Request) -> Response:
    if request.headers.get("x-console-fragment"):
        return Response(status_code=401)  # the page's script reloads into the sign-in page
    return RedirectResponse(f"{sessions.PATH}/sign-in", 303)


async def form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def forbidden() -> HTMLResponse:
    return render("message.html", 403, title="Forbidden", message="Missing or invalid form token.")


async def checked_post(request: Request) -> tuple[Visitor | None, dict[str, str], Response | None]:
    """The visitor and form of a POST, or the response that refuses it."""
    found = visitor(request)
    if found is None:
        return None, {}, to_sign_in(request)
    fields = await form(request)
    if not sessions.csrf_ok(context(request).session_key, found.session, fields.get("csrf")):
        return None, {}, forbidden()
    return found, fields, None


def error_page(err: AirdockError, me: Visitor | None, back: str | None = None) -> HTMLResponse:
    return render(
        "message.html",
        err.status,
        title=err.code,
        message=err.message,
        me=me,
        back=back,
    )


def env_path(name: str) -> str:
    return f"{sessions.PATH}/environments/{quote(name, safe='')}"


async def in_thread(func: Any, *args: Any) -> Any:
    # Authorization and store reads block; keep them off the event loop.
    return await run_in_threadpool(func, *args)
