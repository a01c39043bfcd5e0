"""The encrypted store of minted access keys, and the server's cache of it."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from controlplane.keystore import KEY_ENV, KeyCache, KeyStore, KeyStoreError


def test_keys_are_encrypted_and_private(tmp_path: Path):
    store = KeyStore(tmp_path)
    key = store.mint_user_key("alice")
    raw = store.path.read_bytes()
    assert key.secret_access_key.encode() not in raw and b"alice" not in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert KeyStore(tmp_path).read() == [key]
    assert key.secret_access_key not in repr(key)


def test_a_tampered_or_foreign_file_is_refused(tmp_path: Path):
    store = KeyStore(tmp_path)
    store.mint_user_key("alice")
    token = bytearray(store.path.read_bytes())
    token[40] = ord("A") if token[40] != ord("A") else ord("B")
    store.path.write_bytes(bytes(token))
    with pytest.raises(KeyStoreError, match="cannot be decrypted"):
        KeyStore(tmp_path).read()
    store.path.write_bytes(Fernet(Fernet.generate_key()).encrypt(b'{"keys": []}'))
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path).read()


def test_key_from_the_environment_leaves_no_key_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    store = KeyStore(tmp_path)
    key = store.mint_user_key("alice")
    assert not store.key_path.exists()
    assert KeyStore(tmp_path).read() == [key]
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path).read()  # a fresh key file cannot open it


def test_sessions_and_deletion(tmp_path: Path):
    store = KeyStore(tmp_path)
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


def test_cache_sees_new_keys_at_once_and_deletions_on_refresh(tmp_path: Path):
    store = KeyStore(tmp_path)
    cache = KeyCache(store)
    assert cache.lookup("AKIANOTHING000000000") is None
    key = KeyStore(tmp_path).mint_user_key("alice")  # another process, in effect
    found = cache.lookup(key.access_key_id)
    assert found is not None and found.user == "alice"
    store.delete(key.access_key_id)
    assert cache.lookup(key.access_key_id) is not None  # hits are served from memory...
    cache.refresh()
    assert cache.lookup(key.access_key_id) is None  # ...until the next refresh


def test_cache_keeps_the_last_good_keys_when_the_file_breaks(tmp_path: Path, caplog):
    store = KeyStore(tmp_path)
    key = store.mint_user_key("alice")
    cache = KeyCache(store)
    assert cache.lookup(key.access_key_id) is not None
    store.path.write_text("garbage\n")
    cache.refresh()
    assert cache.lookup(key.access_key_id) is not None
    assert "minted access keys not reloaded" in caplog.text


def test_a_bad_key_is_a_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-a-fernet-key")
    with pytest.raises(KeyStoreError, match=f"{KEY_ENV} is not a Fernet key"):
        KeyStore(tmp_path).ensure_key()
