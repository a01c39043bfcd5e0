"""Sessions of the embedded IAM's roles on the MWAA API: only a session the embedded AWS
minted, with its own token and before it expires, authenticates; any other key is left to the
directory (and so refused there)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import iam
from controlplane.execution_sessions import ExecutionRoleSessions
from controlplane.keystore import EMBEDDED_ROLE, KeyCache, KeyStore
from environments.aws.roles import RoleReader
from environments.store import Store


@pytest.fixture
def store(tmp_path: Path, db_url: str) -> KeyStore:
    db = Store(db_url)
    db.create_schema()
    keys = KeyStore(tmp_path, db)
    keys.ensure_key()
    yield keys
    db.dispose()


def sessions(store: KeyStore) -> ExecutionRoleSessions:
    # The role reader is never reached by a secret lookup; nothing here calls AWS.
    return ExecutionRoleSessions(KeyCache(store), RoleReader(clients=None), "123456789012")


def test_a_minted_session_authenticates_with_its_own_token_only(store: KeyStore) -> None:
    minted = store.mint_session(EMBEDDED_ROLE + "AROAEXAMPLE", "AmazonMWAA-airflow", 900)
    gate = sessions(store)
    assert gate.lookup_secret(minted.access_key_id, minted.session_token) == (
        minted.secret_access_key
    )
    for token in (None, "", minted.session_token + "x", minted.session_token[:-1]):
        with pytest.raises(iam.SigV4Error) as refused:
            gate.lookup_secret(minted.access_key_id, token)
        assert refused.value.code == iam.SigV4Error.UNRECOGNIZED


def test_other_keys_are_not_execution_role_sessions(store: KeyStore) -> None:
    user = store.mint_user_key("alice")
    configured = store.mint_session("configured-role", "s", 900)
    gate = sessions(store)
    for key in (user, configured):
        with pytest.raises(iam.SigV4Error):
            gate.lookup_secret(key.access_key_id, key.session_token)
        assert gate.principal(key.access_key_id) is None
    with pytest.raises(iam.SigV4Error):
        gate.lookup_secret("ASIANOSUCHKEY", "token")


def test_an_expired_session_is_refused_as_expired(store: KeyStore, monkeypatch) -> None:
    minted = store.mint_session(EMBEDDED_ROLE + "AROAEXAMPLE", "s", 900)
    gate = sessions(store)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=901)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr("controlplane.execution_sessions.dt.datetime", Clock)
    with pytest.raises(iam.SigV4Error) as refused:
        gate.lookup_secret(minted.access_key_id, minted.session_token)
    assert refused.value.code == iam.SigV4Error.EXPIRED
