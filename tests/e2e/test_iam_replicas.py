"""Replicas share one identity store: a key minted through one works on every replica, and its
deletion is honoured by all of them within a second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.conftest import start_server
from tests.e2e.iam_support import IamServer, airdock, error_code, example_config, write_config
from tests.waiting import wait_until


def _replicas(base: Path, database_url: str, key: str) -> list[IamServer]:
    config = write_config(base / "config", example_config())
    env = {"AIRDOCK_KEYSTORE_KEY": key}
    servers = []
    for name in ("one", "two"):
        live = start_server(
            base / name, "--iam-config", str(config), "--database-url", database_url, env=env
        )
        servers.append(IamServer(live, config))
    return servers


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def test_a_key_minted_on_one_replica_works_on_both_and_its_deletion_too(
    shared_store: str, tmp_path: Path, monkeypatch
):
    key = Fernet.generate_key().decode()
    one, two = _replicas(tmp_path, shared_store, key)
    try:
        monkeypatch.setenv("AIRDOCK_KEYSTORE_KEY", key)
        minted = airdock(
            "iam",
            "create-access-key",
            "bea",
            "--data-dir",
            str(one.live.data_dir),
            "--database-url",
            shared_store,
        )
        created = json.loads(minted.stdout)["AccessKey"]
        pair = (created["AccessKeyId"], created["SecretAccessKey"])
        for server in (one, two):
            assert "Environments" in server.client(pair).list_environments()

        airdock(
            "iam",
            "delete-access-key",
            pair[0],
            "--data-dir",
            str(two.live.data_dir),
            "--database-url",
            shared_store,
        )
        # The caches check the store at most every 0.5 s: both refuse within a second.
        for server in (one, two):
            wait_until(
                lambda server=server: (
                    error_code(server.client(pair).list_environments)
                    == "UnrecognizedClientException"
                ),
                timeout=1.0,
                interval=0.05,
                message="the deleted key to be refused on every replica",
            )
    finally:
        one.live.stop()
        two.live.stop()


def test_a_replica_with_another_sealing_key_refuses_to_start(tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    config = write_config(tmp_path / "config", example_config())
    first = start_server(
        tmp_path / "one",
        "--iam-config",
        str(config),
        "--database-url",
        store,
        env={"AIRDOCK_KEYSTORE_KEY": Fernet.generate_key().decode()},
    )
    try:
        with pytest.raises(RuntimeError, match="exited"):
            start_server(
                tmp_path / "two",
                "--iam-config",
                str(config),
                "--database-url",
                store,
                env={"AIRDOCK_KEYSTORE_KEY": Fernet.generate_key().decode()},
                timeout=30,
            )
        log = (tmp_path / "two-server.log").read_text()
        assert "sealed with another key" in log and "AIRDOCK_KEYSTORE_KEY" in log
    finally:
        first.stop()
