"""The few pages the doors answer with themselves (everything else is Airflow's)."""

from __future__ import annotations

import html

from aiohttp import web

# The doors' own pages load nothing and run no script but their own inline one.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def page(status: int, title: str, message: str) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return web.Response(
        status=status, text=body, content_type="text/html", headers=SECURITY_HEADERS
    )


def forbidden(message: str) -> web.Response:
    return page(403, "403 Forbidden", message)


def unavailable(name: str) -> web.Response:
    return page(
        503,
        "503 Service Unavailable",
        f"The Apache Airflow web server of environment {name} is not running.",
    )
