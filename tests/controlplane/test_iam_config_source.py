"""Loading and reloading the IAM config file (no server: DirectorySource.check directly)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controlplane.credentials import KeyPair
from controlplane.iam_config import DirectorySource, IamConfigError, read_config

ADMIN = KeyPair("AKIAADMIN00000000001", "admin-secret")
ACCOUNT = "123456789012"


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # Some filesystems keep coarse mtimes: make every write visibly newer.
    stamp = path.stat().st_mtime_ns + 10_000_000
    os.utime(path, ns=(stamp, stamp))


def _source(path: Path) -> DirectorySource:
    return DirectorySource(path=path, account_id=ACCOUNT, admin=ADMIN)


def test_reload_swaps_in_good_files_and_ignores_broken_ones(tmp_path: Path, caplog):
    path = tmp_path / "iam.yaml"
    _write(path, "users:\n  alice: {}\n")
    source = _source(path)
    first = source.current
    assert set(first.users) == {"alice", "airdock-admin"}
    assert source.check() is False  # unchanged: nothing to do

    _write(path, "users:\n  alice: {}\n  bob: {}\n")
    assert source.check() is True
    assert "bob" in source.current.users

    good = source.current
    _write(path, "users: [\n  secret_access_key: do-not-print-me\n")
    assert source.check() is False
    assert source.current is good
    assert "IAM config not reloaded" in caplog.text and "line " in caplog.text
    assert "do-not-print-me" not in caplog.text
    caplog.clear()
    assert source.check() is False
    assert caplog.text == ""  # a broken version is reported once


def test_admin_is_always_present_and_cannot_be_redefined(tmp_path: Path):
    path = tmp_path / "iam.yaml"
    _write(path, "users:\n  airdock-admin: {}\n")
    with pytest.raises(IamConfigError, match="reserved"):
        _source(path)
    source = DirectorySource(path=None, account_id=ACCOUNT, admin=ADMIN)
    principal = source.current.principal_for_key(ADMIN.access_key_id)
    assert principal is not None and principal.name == "airdock-admin"


def test_policy_files_are_read_and_watched(tmp_path: Path):
    (tmp_path / "policies").mkdir()
    policy = tmp_path / "policies" / "p.json"
    _write(
        policy,
        '{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "airflow:Get*", "Resource": "*"}]}',
    )
    path = tmp_path / "iam.yaml"
    _write(path, "policies:\n  P: file://policies/p.json\nusers:\n  alice: {policies: [P]}\n")
    source = _source(path)
    assert source.current.policies["P"].statements[0].actions == ("airflow:Get*",)
    _write(policy, '{"Version": "2012-10-17", "Statement": []}')
    assert source.check() is True
    assert source.current.policies["P"].statements == ()
    _write(policy, "{not json")
    assert source.check() is False


def test_errors_name_file_and_place(tmp_path: Path):
    path = tmp_path / "iam.yaml"
    _write(path, "policies:\n  P: file://missing.json\n")
    with pytest.raises(IamConfigError, match=r"policies\.P: cannot read .*missing\.json"):
        read_config(path, ACCOUNT)
    _write(path, "users:\n  alice: {groups: [g]}\n")
    with pytest.raises(IamConfigError, match=r"iam\.yaml: users\.alice\.groups\[0\]"):
        read_config(path, ACCOUNT)
