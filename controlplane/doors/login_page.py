"""The page at `/aws_mwaa/aws-console-sso?login=true#{WebToken}`.

The token travels in the URL's fragment, which browsers never send to a server; the page's one
inline script reads it, wipes it from the address bar and history, and POSTs it back to the same
path as a form. Its Content-Security-Policy allows that script alone (by its hash) and a form
posting to this origin alone.
"""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from controlplane.doors.pages import SECURITY_HEADERS

SCRIPT = """
var token = window.location.hash.slice(1);
history.replaceState(null, "", window.location.pathname + window.location.search);
if (token) {
  var form = document.getElementById("login");
  form.elements.token.value = decodeURIComponent(token);
  form.submit();
} else {
  document.getElementById("state").textContent = "This sign-in link carries no token.";
}
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
POLICY = (
    "default-src 'none'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Signing in to Apache Airflow</title></head>
<body>
<p id="state">Signing in to Apache Airflow&hellip;</p>
<form id="login" method="post" action="/aws_mwaa/aws-console-sso">
<input type="hidden" name="token" value="">
<noscript><p>Signing in needs JavaScript.</p></noscript>
</form>
<script>{SCRIPT}</script>
</body></html>
"""


def login_page() -> web.Response:
    return web.Response(
        text=PAGE,
        content_type="text/html",
        headers={**SECURITY_HEADERS, "Content-Security-Policy": POLICY},
    )
