"""Console sessions: a signed cookie naming the access key, and CSRF tokens derived from it.

The cookie holds no secret: `key id . expiry . nonce . HMAC`, signed with a key kept in the
store (the same on every replica and API worker), sent HttpOnly and SameSite=Strict. Every
request looks the key up again, so deleting an access key ends its console sessions too.
A form's CSRF token is an HMAC of the session cookie, so it is valid for that session alone;
the sign-in form, which has no session yet, pairs a random token with a short-lived cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "airdock_console"
LOGIN_COOKIE = "airdock_console_login"
SESSION_SECONDS = 8 * 3600
PATH = "/console"


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}\n{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Session:
    access_key_id: str
    expires_at: float
    cookie: str


def issue(key: bytes, access_key_id: str, expires_at: float | None = None) -> str:
    """A new session cookie value for `access_key_id`."""
    expires = int(expires_at if expires_at is not None else time.time() + SESSION_SECONDS)
    body = f"{access_key_id}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(key, 'session', body)}"


def read(key: bytes, cookie: str | None) -> Session | None:
    """The session a cookie value stands for; None when it is missing, forged or expired."""
    if not cookie or cookie.count(".") != 3:
        return None
    body, _, mac = cookie.rpartition(".")
    if not hmac.compare_digest(mac, _mac(key, "session", body)):
        return None
    access_key_id, expires, _nonce = body.split(".")
    try:
        expires_at = float(expires)
    except ValueError:
        return None
    if expires_at <= time.time():
        return None
    return Session(access_key_id, expires_at, cookie)


def csrf_token(key: bytes, session: Session) -> str:
    return _mac(key, "csrf", session.cookie)


def csrf_ok(key: bytes, session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(given), csrf_token(key, session))


def cookie_options(max_age: int) -> dict:
    return {
        "max_age": max_age,
        "path": PATH,
        "httponly": True,
        "samesite": "strict",
    }
