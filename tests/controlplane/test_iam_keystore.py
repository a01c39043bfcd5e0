"""The encrypted store of minted access keys, and the server's cache of it."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from controlplane.keystore import KEY_ENV, KeyCache, KeyStore, KeyStoreError, MintedKey
from environments.store import AccessKeyRow, Store


@pytest.fixture
def db(db_url: str) -> Store:
    store = Store(db_url)
    store.create_schema()
    yield store
    store.dispose()


def _sealed_rows(db: Store) -> list[AccessKeyRow]:
    with db.transaction() as session:
        return list(session.scalars(select(AccessKeyRow)))


def test_keys_are_encrypted_and_the_key_is_private(tmp_path: Path, db: Store):
    store = KeyStore(tmp_path, db)
    store.ensure_key()
    key = store.mint_user_key("alice")
    [row] = _sealed_rows(db)
    assert key.secret_access_key not in row.sealed
    assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert KeyStore(tmp_path, db).read() == [key]
    assert key.secret_access_key not in repr(key)


def test_a_row_moved_to_another_user_or_sealed_elsewhere_is_refused(tmp_path: Path, db: Store):
    store = KeyStore(tmp_path, db)
    key = store.mint_user_key("alice")
    with db.transaction() as session:
        session.execute(update(AccessKeyRow).values(user="mallory"))
    with pytest.raises(KeyStoreError, match="does not match its record"):
        store.read()
    foreign = Fernet(Fernet.generate_key()).encrypt(json.dumps(key.to_record()).encode())
    with db.transaction() as session:
        session.execute(update(AccessKeyRow).values(user="alice", sealed=foreign.decode()))
    with pytest.raises(KeyStoreError, match="cannot be opened"):
        store.read()


def test_a_server_with_another_key_stops_at_start(tmp_path: Path, db: Store, monkeypatch):
    KeyStore(tmp_path / "first", db).ensure_key()
    with pytest.raises(KeyStoreError, match=f"sealed with another key.*{KEY_ENV}"):
        KeyStore(tmp_path / "second", db).ensure_key()
    # The same key, given to both, is what replicas are told to do.
    monkeypatch.setenv(KEY_ENV, (tmp_path / "first/iam/keystore.key").read_text().strip())
    KeyStore(tmp_path / "second", db).ensure_key()


def test_key_from_the_environment_leaves_no_key_file(tmp_path: Path, db: Store, monkeypatch):
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    store = KeyStore(tmp_path, db)
    key = store.mint_user_key("alice")
    assert not store.key_path.exists()
    assert KeyStore(tmp_path, db).read() == [key]
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path, db).read()  # a fresh key file cannot open it


def test_sessions_and_deletion(tmp_path: Path, db: Store):
    store = KeyStore(tmp_path, db)
    session = store.mint_session("deployer", "ci", 900)
    assert session.access_key_id.startswith("ASIA") and session.session_token
    as_iam = session.as_iam_key()
    assert as_iam.role == "deployer" and as_iam.expires_at is not None
    assert as_iam.expires_at - as_iam.issued_at == dt.timedelta(seconds=900)
    with pytest.raises(KeyStoreError, match="duration"):
        store.mint_session("deployer", "ci", 60)
    assert store.delete(session.access_key_id) is True
    assert store.delete(session.access_key_id) is False
    assert store.read() == []


def test_long_expired_sessions_are_pruned_at_the_next_write(tmp_path: Path, db: Store):
    store = KeyStore(tmp_path, db)
    store.add(
        MintedKey(
            "ASIAOLD0000000000000",
            "s",
            "2020-01-01T00:00:00Z",
            role="r",
            session_name="x",
            session_token="t",
            expires="2020-01-01T01:00:00Z",
        )
    )
    fresh = store.mint_user_key("alice")
    assert store.read() == [fresh]


def test_cache_sees_new_keys_at_once_and_deletions_within_its_max_age(tmp_path: Path, db: Store):
    store = KeyStore(tmp_path, db)
    cache = KeyCache(KeyStore(tmp_path, db), max_age=3600)
    assert cache.lookup("AKIANOTHING000000000") is None
    key = store.mint_user_key("alice")  # another process, in effect
    found = cache.lookup(key.access_key_id)
    assert found is not None and found.user == "alice"
    store.delete(key.access_key_id)
    assert cache.lookup(key.access_key_id) is not None  # hits are served from memory...
    cache.refresh()
    assert cache.lookup(key.access_key_id) is None  # ...until the next check
    again = store.mint_user_key("alice")
    eager = KeyCache(KeyStore(tmp_path, db), max_age=0)
    assert eager.lookup(again.access_key_id) is not None
    store.delete(again.access_key_id)
    assert eager.lookup(again.access_key_id) is None  # max_age 0: every lookup checks


def test_cache_keeps_the_last_good_keys_when_the_store_breaks(tmp_path, db: Store, caplog):
    store = KeyStore(tmp_path, db)
    key = store.mint_user_key("alice")
    cache = KeyCache(store, max_age=0)
    assert cache.lookup(key.access_key_id) is not None
    with db.transaction() as session:
        session.execute(update(AccessKeyRow).values(sealed="garbage"))
    store.mint_user_key("bob")  # a new generation, so the cache reads again
    assert cache.lookup(key.access_key_id) is not None
    assert "minted access keys not reloaded" in caplog.text


def test_keys_from_the_old_key_file_move_into_the_store(tmp_path: Path, db: Store):
    store = KeyStore(tmp_path, db)
    store.ensure_key()
    old = MintedKey("AKIAOLDFILE000000000", "secret", "2024-01-01T00:00:00Z", user="alice")
    plain = json.dumps({"version": 1, "keys": [old.to_record()]}).encode()
    legacy = store.root / "access-keys.fernet"
    legacy.write_bytes(Fernet(store.key_path.read_bytes().strip()).encrypt(plain))
    assert store.import_legacy_file() == 1
    assert store.read() == [old]
    assert not legacy.exists() and legacy.with_name("access-keys.fernet.imported").exists()
    assert store.import_legacy_file() == 0


def test_a_bad_key_is_a_clear_error(tmp_path: Path, db: Store, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-a-fernet-key")
    with pytest.raises(KeyStoreError, match=f"{KEY_ENV} is not a Fernet key"):
        KeyStore(tmp_path, db).ensure_key()
