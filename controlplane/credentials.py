"""Access key pairs, and the bootstrap admin's: made once per data dir, owner-readable only."""

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
class KeyPair:
    """An access key id and its secret, before the IAM directory knows whose they are."""

    access_key_id: str
    secret_access_key: str


def new_key_pair(prefix: str = "AKIA") -> KeyPair:
    key_id = prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return KeyPair(key_id, secret)


def read_admin(data_dir: Path) -> KeyPair:
    """The admin key of a data dir: OSError when there is none, ValueError when it is damaged."""
    data = json.loads((data_dir / ADMIN_FILE).read_text())
    try:
        return KeyPair(data["access_key_id"], data["secret_access_key"])
    except (KeyError, TypeError):
        raise ValueError(f"{data_dir / ADMIN_FILE} holds no access key") from None


def load_or_create_admin(data_dir: Path) -> KeyPair:
    try:
        return read_admin(data_dir)
    except FileNotFoundError:
        pass
    key = new_key_pair()
    record = {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}
    if create_once(data_dir / ADMIN_FILE, json.dumps(record).encode()):
        return key
    return read_admin(data_dir)  # another process (a CLI, a second server) was first
