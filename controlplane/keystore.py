"""Access keys minted at runtime (`airdock iam create-access-key`), encrypted at rest.

Layout under ``DATA_DIR/iam/``::

    keystore.key         the Fernet key, created once with mode 0600 (or AIRDOCK_KEYSTORE_KEY)
    access-keys.fernet   one Fernet token holding every minted key as JSON
    access-keys.lock     serialises writers (several CLI invocations at once)

SigV4 needs the secret itself on the server side (the signing key is derived from it per day),
so the secret cannot be stored as a one-way hash: it is encrypted instead. The whole document
is one authenticated token, so a hand-edited file (say, a key moved to another user) is refused
rather than trusted. Keeping the key in ``AIRDOCK_KEYSTORE_KEY`` instead of the key file means a
copy of the data dir (a backup, a snapshot) holds no usable secret at all.

Writers are the CLI; the server only reads, through :class:`KeyCache`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

import iam
from controlplane.credentials import new_key_pair
from environments.plumbing import watching
from environments.plumbing.files import atomic_write, create_once
from environments.plumbing.locks import FileLock

log = logging.getLogger(__name__)

KEY_ENV = "AIRDOCK_KEYSTORE_KEY"
USER_KEY_PREFIX = "AKIA"
SESSION_KEY_PREFIX = "ASIA"
MAX_SESSION_SECONDS = 12 * 3600
# Expired session keys are kept this long (so a client still gets ExpiredToken, not
# UnrecognizedClient), then dropped at the next write.
_EXPIRED_RETENTION = dt.timedelta(days=1)


class KeyStoreError(Exception):
    """The key store cannot be read (wrong key, damaged file) or a request makes no sense."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MintedKey:
    """One stored key. ``user`` for a long-term user key, ``role`` for temporary role
    credentials (then ``session_token`` and ``expires`` are set)."""

    access_key_id: str
    secret_access_key: str
    created: str
    user: str | None = None
    role: str | None = None
    session_name: str | None = None
    session_token: str | None = None
    expires: str | None = None

    def __repr__(self) -> str:  # never show the secret or the token
        owner = f"user={self.user}" if self.user else f"role={self.role}"
        return f"<MintedKey {self.access_key_id} {owner}>"

    def to_record(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MintedKey:
        return cls(**record)

    def expired(self, now: dt.datetime) -> bool:
        expires = _parse_iso(self.expires)
        return expires is not None and now >= expires

    def as_iam_key(self) -> iam.AccessKey:
        issued = _parse_iso(self.created) if self.role else None
        return iam.AccessKey(
            self.access_key_id,
            self.secret_access_key,
            user=self.user,
            role=self.role,
            session_name=self.session_name,
            session_token=self.session_token,
            issued_at=issued,
            expires_at=_parse_iso(self.expires),
        )


class KeyStore:
    """The encrypted key file of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "iam"
        self.path = self.root / "access-keys.fernet"
        self.key_path = self.root / "keystore.key"
        self._lock_path = self.root / "access-keys.lock"
        self._fernet: Fernet | None = None

    # --- the encryption key -------------------------------------------------------------

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            from_env = os.environ.get(KEY_ENV)
            key = from_env.strip().encode() if from_env else self._load_or_create_key()
            try:
                self._fernet = Fernet(key)
            except ValueError:
                source = f"${KEY_ENV}" if from_env else str(self.key_path)
                raise KeyStoreError(f"{source} is not a Fernet key") from None
        return self._fernet

    def _load_or_create_key(self) -> bytes:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key_path.exists():
            # When the server and a CLI start at once, both end up with the same, complete key.
            create_once(self.key_path, Fernet.generate_key() + b"\n")
        return self.key_path.read_bytes().strip()

    def ensure_key(self) -> None:
        """Create the key now (the server does this at start-up, so files get one owner)."""
        self._cipher()

    # --- reading and writing ------------------------------------------------------------

    def signature(self) -> watching.Signature | None:
        """What changes whenever the file is replaced: a cheap way to notice new keys."""
        return watching.signature(self.path)

    def read(self) -> list[MintedKey]:
        try:
            token = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            plain = self._cipher().decrypt(token.strip())
        except (InvalidToken, ValueError):
            raise KeyStoreError(
                f"{self.path} cannot be decrypted with the key store key "
                f"({self.key_path} or ${KEY_ENV}); it was damaged or the key changed"
            ) from None
        data = json.loads(plain)
        return [MintedKey.from_record(r) for r in data.get("keys", [])]

    def _write(self, keys: list[MintedKey]) -> None:
        plain = json.dumps({"version": 1, "keys": [k.to_record() for k in keys]}).encode()
        atomic_write(self.path, self._cipher().encrypt(plain).decode() + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[MintedKey]]:
        """Read-modify-write under an exclusive lock; the caller mutates the yielded list."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with FileLock(self._lock_path):
            keys = self.read()
            yield keys
            cutoff = _now() - _EXPIRED_RETENTION
            self._write([k for k in keys if not k.expired(cutoff)])

    # --- operations ---------------------------------------------------------------------

    def add(self, key: MintedKey) -> MintedKey:
        with self._locked() as keys:
            if any(k.access_key_id == key.access_key_id for k in keys):
                raise KeyStoreError(f"access key {key.access_key_id} already exists")
            keys.append(key)
        return key

    def mint_user_key(self, user: str) -> MintedKey:
        pair = new_key_pair(USER_KEY_PREFIX)
        return self.add(
            MintedKey(pair.access_key_id, pair.secret_access_key, _iso(_now()), user=user)
        )

    def mint_session(self, role: str, session_name: str, seconds: int) -> MintedKey:
        if not 900 <= seconds <= MAX_SESSION_SECONDS:
            raise KeyStoreError(f"duration must be 900 to {MAX_SESSION_SECONDS} seconds")
        pair = new_key_pair(SESSION_KEY_PREFIX)
        now = _now()
        return self.add(
            MintedKey(
                pair.access_key_id,
                pair.secret_access_key,
                _iso(now),
                role=role,
                session_name=session_name,
                session_token=secrets.token_urlsafe(96),
                expires=_iso(now + dt.timedelta(seconds=seconds)),
            )
        )

    def delete(self, access_key_id: str) -> bool:
        with self._locked() as keys:
            before = len(keys)
            keys[:] = [k for k in keys if k.access_key_id != access_key_id]
            return len(keys) != before


class KeyCache:
    """The server's view of the key store: decrypted once per change of the file.

    A key the cache does not know triggers a cheap ``stat`` to see whether the file changed, so
    a key minted a moment ago works on its first request. Deletions are noticed by
    :meth:`refresh`, which the directory watcher calls about once a second.
    """

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._keys: dict[str, iam.AccessKey] = {}
        self._signature: watching.Signature | None = None
        self._failed: watching.Signature | None = None

    def refresh(self) -> None:
        signature = self._store.signature()
        if signature == self._signature or signature == self._failed:
            return
        with self._lock:
            if signature == self._signature:
                return
            try:
                keys = {k.access_key_id: k.as_iam_key() for k in self._store.read()}
            except (KeyStoreError, ValueError, TypeError, KeyError) as err:
                # Keep the last good keys; log once per version of the broken file.
                self._failed = signature
                log.error("minted access keys not reloaded: %s", err)
                return
            self._keys = keys
            self._signature = signature
            self._failed = None

    def lookup(self, access_key_id: str) -> iam.AccessKey | None:
        key = self._keys.get(access_key_id)
        if key is None:
            self.refresh()
            key = self._keys.get(access_key_id)
        return key
