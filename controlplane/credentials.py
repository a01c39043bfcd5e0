"""The bootstrap admin's access key: made once per data dir, kept owner-readable only."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from environments.plumbing.files import create_once

ADMIN_FILE = "admin.json"
_KEY_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str


def new_access_key(prefix: str = "AKIA") -> AccessKey:
    key_id = prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return AccessKey(key_id, secret)


def read_admin(data_dir: Path) -> AccessKey:
    """The admin key of a data dir: OSError when there is none, ValueError when it is damaged."""
    data = json.loads((data_dir / ADMIN_FILE).read_text())
    try:
        return AccessKey(data["access_key_id"], data["secret_access_key"])
    except (KeyError, TypeError):
        raise ValueError(f"{data_dir / ADMIN_FILE} holds no access key") from None


def load_or_create_admin(data_dir: Path) -> AccessKey:
    try:
        return read_admin(data_dir)
    except FileNotFoundError:
        pass
    key = new_access_key()
    record = {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}
    if create_once(data_dir / ADMIN_FILE, json.dumps(record).encode()):
        return key
    return read_admin(data_dir)  # another process (a CLI, a second server) was first
