"""`airdock iam create-access-key / list-access-keys / delete-access-key` against the data dir
of a running server: keys work at once, are stored encrypted, and stop working when deleted."""

from __future__ import annotations

import json
import stat

from tests.e2e.iam_support import airdock, error_code
from tests.waiting import wait_until

pytest_plugins = ["tests.e2e.iam_fixtures"]  # the iam_server fixture


def test_minted_key_works_at_once_and_is_encrypted_at_rest(iam_server):
    data_dir = iam_server.live.data_dir
    minted = airdock("iam", "create-access-key", "bea", "--data-dir", str(data_dir))
    key = json.loads(minted.stdout)["AccessKey"]
    assert key["UserName"] == "bea" and key["Status"] == "Active"
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40

    bea = iam_server.client((key["AccessKeyId"], key["SecretAccessKey"]))
    assert "Environments" in bea.list_environments()  # no restart, no waiting
    assert error_code(lambda: bea.delete_environment(Name="b-anything")) == "AccessDeniedException"

    # The shared store holds the key sealed: neither the secret nor the owner is readable in
    # the database files (main file and write-ahead log).
    for path in data_dir.glob("airdock.db*"):
        raw = path.read_bytes()
        assert key["SecretAccessKey"].encode() not in raw, path
    key_file = data_dir / "iam" / "keystore.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    listed = airdock("iam", "list-access-keys", "bea", "--data-dir", str(data_dir))
    metadata = json.loads(listed.stdout)["AccessKeyMetadata"]
    assert [m["AccessKeyId"] for m in metadata] == [key["AccessKeyId"]]
    assert key["SecretAccessKey"] not in listed.stdout

    airdock("iam", "delete-access-key", key["AccessKeyId"], "--data-dir", str(data_dir))
    wait_until(
        lambda: error_code(bea.list_environments) == "UnrecognizedClientException",
        timeout=2,
        message="the deleted key to be refused",
    )
    listed = airdock("iam", "list-access-keys", "bea", "--data-dir", str(data_dir))
    assert json.loads(listed.stdout)["AccessKeyMetadata"] == []


def test_unknown_users_and_keys_are_errors(iam_server):
    data_dir = str(iam_server.live.data_dir)
    failed = airdock("iam", "create-access-key", "mallory", "--data-dir", data_dir, check=False)
    assert failed.returncode == 1
    assert "NoSuchEntity" in failed.stderr and "mallory" in failed.stderr
    assert failed.stdout == ""
    failed = airdock(
        "iam", "delete-access-key", "AKIANOSUCHKEY0000000", "--data-dir", data_dir, check=False
    )
    assert failed.returncode == 1 and "NoSuchEntity" in failed.stderr
    failed = airdock("iam", "create-role-session", "nobody", "--data-dir", data_dir, check=False)
    assert failed.returncode == 1 and "NoSuchEntity" in failed.stderr
