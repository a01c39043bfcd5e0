"""Opaque, tamper-evident NextTokens for ListEnvironments.

A token carries the last name returned and when it was issued, signed with a key that every
replica shares through the store. Forged or altered tokens fail the signature; old ones expire,
so a client cannot page forever through a listing that has long since changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from environments.errors import ValidationException

TOKEN_TTL_SECONDS = 3600.0


class PageTokens:
    def __init__(self, key: bytes, ttl: float = TOKEN_TTL_SECONDS) -> None:
        self._key = key
        self._ttl = ttl

    def issue(self, after: str, now: float | None = None) -> str:
        payload = json.dumps({"a": after, "t": round(now or time.time(), 3)}, separators=(",", ":"))
        body = payload.encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def read(self, token: str, now: float | None = None) -> str:
        """Return the name to list after, or raise ValidationException."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            raise ValidationException("The NextToken is not valid.") from None
        mac, body = raw[:16], raw[16:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        if len(mac) != 16 or not hmac.compare_digest(mac, expected):
            raise ValidationException("The NextToken is not valid.")
        data = json.loads(body)
        if (now or time.time()) - float(data["t"]) > self._ttl:
            raise ValidationException("The NextToken has expired; start the listing again.")
        return str(data["a"])
