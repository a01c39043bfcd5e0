"""Access key pairs, and the bootstrap admin's: made once per data dir, owner-readable only."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

_KEY_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True)
class KeyPair:
    """An access key id and its secret, before the IAM directory knows whose they are."""

    access_key_id: str
    secret_access_key: str


def new_key_pair(prefix: str = "AKIA") -> KeyPair:
    key_id = prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return KeyPair(key_id, secret)


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def load_or_create_admin(data_dir: Path) -> KeyPair:
    path = data_dir / "admin.json"
    if path.exists():
        data = json.loads(path.read_text())
        return KeyPair(data["access_key_id"], data["secret_access_key"])
    key = new_key_pair()
    write_private(
        path,
        json.dumps(
            {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}
        ),
    )
    return key
