"""Access keys minted at runtime (`airdock iam create-access-key`), encrypted at rest.

The keys live in the shared store (table ``access_keys``), so a key minted through one replica
works on every replica, and a deleted key stops working on all of them within a second.

SigV4 needs the secret itself on the server side (the signing key is derived from it per day),
so the secret cannot be stored as a one-way hash: it is encrypted instead. Each row holds one
Fernet token, an authenticated record of the whole key; a hand-edited row (say, a key moved to
another user) no longer matches its record and is refused rather than trusted.

The Fernet key is ``AIRDOCK_KEYSTORE_KEY`` or, failing that, ``DATA_DIR/iam/keystore.key``
(created once, mode 0600). Replicas sharing a PostgreSQL store must share the key: a canary
row sealed with the first key makes a replica with another key stop at start-up with a clear
message instead of refusing every key later. Keeping the key out of the database means a copy
of the database (a backup, a dump) holds no usable secret.

Writers are the CLI; the server only reads, through :class:`KeyCache`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select

import iam
from controlplane.credentials import new_key_pair
from environments import store as rows
from environments.plumbing.files import create_once
from environments.store import AccessKeyRow, Store

log = logging.getLogger(__name__)

KEY_ENV = "AIRDOCK_KEYSTORE_KEY"
USER_KEY_PREFIX = "AKIA"
SESSION_KEY_PREFIX = "ASIA"
MAX_SESSION_SECONDS = 12 * 3600
# Expired session keys are kept this long (so a client still gets ExpiredToken, not
# UnrecognizedClient), then dropped at the next write.
_EXPIRED_RETENTION = dt.timedelta(days=1)
# Changes every time a key is added or deleted: what a cache compares to know it is current.
_GENERATION = "access-keys-generation"
_CANARY = "access-keys-canary"
_CANARY_TEXT = b"airdock access keys"
# The file earlier versions kept the keys in; imported into the store once, then renamed.
_LEGACY_FILE = "access-keys.fernet"


# A role session's owner when the role is one of the embedded IAM (an execution role), named by
# the role's id so that a role made again under the same name does not inherit old sessions.
EMBEDDED_ROLE = "embedded:"


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
    """The minted keys in one store, sealed with the key of this data dir (or the variable)."""

    def __init__(self, data_dir: Path, db: Store) -> None:
        self.root = data_dir / "iam"
        self.key_path = self.root / "keystore.key"
        self.db = db
        self._fernet: Fernet | None = None

    # --- the encryption key -------------------------------------------------------------

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            from_env = os.environ.get(KEY_ENV)
            key = from_env.strip().encode() if from_env else self._load_or_create_key()
            try:
                self._fernet = Fernet(key)
            except ValueError:
                raise KeyStoreError(f"{self._key_source()} is not a Fernet key") from None
        return self._fernet

    def _key_source(self) -> str:
        return f"${KEY_ENV}" if os.environ.get(KEY_ENV) else str(self.key_path)

    def _load_or_create_key(self) -> bytes:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key_path.exists():
            # When the server and a CLI start at once, both end up with the same, complete key.
            create_once(self.key_path, Fernet.generate_key() + b"\n")
        return self.key_path.read_bytes().strip()

    def ensure_key(self) -> None:
        """Create the key, or check that it is the one the store's keys were sealed with."""
        cipher = self._cipher()
        with self.db.transaction() as session:
            canary = rows.get_or_create_meta(
                session, _CANARY, lambda: cipher.encrypt(_CANARY_TEXT).decode()
            )
        try:
            cipher.decrypt(canary.encode())
        except InvalidToken:
            raise KeyStoreError(
                f"the access keys in the store were sealed with another key than "
                f"{self._key_source()}: every server sharing a store needs the same "
                f"${KEY_ENV} (or a copy of the first server's iam/keystore.key)"
            ) from None

    # --- sealing ------------------------------------------------------------------------

    def _seal(self, key: MintedKey) -> AccessKeyRow:
        expires = _parse_iso(key.expires)
        return AccessKeyRow(
            access_key_id=key.access_key_id,
            user=key.user,
            role=key.role,
            expires_at=expires.timestamp() if expires else None,
            sealed=self._cipher().encrypt(json.dumps(key.to_record()).encode()).decode(),
        )

    def _open(self, row: AccessKeyRow) -> MintedKey:
        try:
            key = MintedKey.from_record(json.loads(self._cipher().decrypt(row.sealed.encode())))
        except (InvalidToken, ValueError, TypeError):
            raise KeyStoreError(
                f"access key {row.access_key_id} cannot be opened with {self._key_source()}; "
                "it was damaged or the key changed"
            ) from None
        if (key.access_key_id, key.user, key.role) != (row.access_key_id, row.user, row.role):
            raise KeyStoreError(f"access key {row.access_key_id} does not match its record")
        return key

    # --- reading and writing ------------------------------------------------------------

    def generation(self) -> str | None:
        """Changes whenever a key is added or deleted: a cheap way to notice changes."""
        with self.db.transaction() as session:
            return rows.get_meta(session, _GENERATION)

    def read(self) -> list[MintedKey]:
        with self.db.transaction() as session:
            found = session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.access_key_id))
            return [self._open(row) for row in found]

    def add(self, key: MintedKey) -> MintedKey:
        sealed = self._seal(key)
        cutoff = (_now() - _EXPIRED_RETENTION).timestamp()
        with self.db.transaction() as session:
            if session.get(AccessKeyRow, key.access_key_id) is not None:
                raise KeyStoreError(f"access key {key.access_key_id} already exists")
            session.execute(delete(AccessKeyRow).where(AccessKeyRow.expires_at < cutoff))
            session.add(sealed)
            session.flush()
            rows.set_meta(session, _GENERATION, uuid.uuid4().hex)
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
        with self.db.transaction() as session:
            gone = session.execute(
                delete(AccessKeyRow).where(AccessKeyRow.access_key_id == access_key_id)
            ).rowcount
            if gone:
                rows.set_meta(session, _GENERATION, uuid.uuid4().hex)
        return bool(gone)

    def import_legacy_file(self) -> int:
        """Move keys from the file earlier versions used into the store; how many moved."""
        path = self.root / _LEGACY_FILE
        try:
            token = path.read_bytes().strip()
        except FileNotFoundError:
            return 0
        try:
            records = json.loads(self._cipher().decrypt(token)).get("keys", [])
        except (InvalidToken, ValueError, AttributeError):
            raise KeyStoreError(
                f"{path} cannot be decrypted with {self._key_source()}; move it away to start "
                "without its keys"
            ) from None
        known = {k.access_key_id for k in self.read()}
        moved = [MintedKey.from_record(r) for r in records if r["access_key_id"] not in known]
        for key in moved:
            self.add(key)
        path.rename(path.with_name(_LEGACY_FILE + ".imported"))
        return len(moved)


class KeyCache:
    """The server's view of the key store: decrypted once per change of the store.

    The store's generation is checked at most every ``max_age`` seconds when a key is looked up,
    and at once for a key the cache does not know, so a key minted a moment ago works on its
    first request and a deleted one stops working within ``max_age`` on every replica.
    """

    def __init__(self, store: KeyStore, max_age: float = 0.5) -> None:
        self._store = store
        self._max_age = max_age
        self._lock = threading.Lock()
        self._keys: dict[str, iam.AccessKey] = {}
        self._generation: str | None = None
        self._failed: str | None = None
        self._checked = 0.0

    def refresh(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            try:
                generation = self._store.generation()
            except Exception as err:  # a store outage must not take the cached keys down
                log.warning("access keys not checked for changes: %s", err)
                return
            if generation in (self._generation, self._failed):
                return
            try:
                keys = {k.access_key_id: k.as_iam_key() for k in self._store.read()}
            except KeyStoreError as err:
                # Keep the last good keys; log once per generation of the broken store.
                self._failed = generation
                log.error("minted access keys not reloaded: %s", err)
                return
            self._keys = keys
            self._generation = generation
            self._failed = None

    def lookup(self, access_key_id: str) -> iam.AccessKey | None:
        if time.monotonic() - self._checked > self._max_age:
            self.refresh()
        key = self._keys.get(access_key_id)
        if key is None:
            self.refresh()
            key = self._keys.get(access_key_id)
        return key
