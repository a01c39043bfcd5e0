"""The IAM config is reloaded while the server runs; a broken file never replaces a good one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.iam_support import (
    INFRA,
    airdock,
    error_code,
    example_config,
    start_iam_server,
    write_config,
)
from tests.waiting import wait_until

NEW_KEY = ("AKIANEWUSER000000001", "new-user-secret-xxxxxxxxxxxxxxxx")


def _until_listing_answers(client, code: str | None, what: str) -> None:
    """Until ListEnvironments fails with `code` (None: succeeds): the reload took effect."""
    wait_until(lambda: error_code(client.list_environments) == code, timeout=10, message=what)


def _until_logged(server, text: str, what: str) -> None:
    wait_until(lambda: text in server.log_text(), timeout=10, message=what)


@pytest.fixture
def reloading(tmp_path):
    server = start_iam_server(tmp_path, example_config())
    yield server
    server.live.stop()


def test_new_user_works_without_restart_and_broken_files_are_ignored(reloading):
    config = example_config()
    newcomer = reloading.client(NEW_KEY)
    assert error_code(newcomer.list_environments) == "UnrecognizedClientException"

    config["users"]["nina"] = {
        "groups": ["auditors"],
        "access_keys": [{"access_key_id": NEW_KEY[0], "secret_access_key": NEW_KEY[1]}],
    }
    write_config(reloading.config_path.parent, config)
    _until_listing_answers(newcomer, None, "the new user to be let in")
    pid = reloading.live.process.pid

    # Not YAML at all: logged, and the config in effect stays.
    reloading.config_path.write_text("users: [unclosed\n  secret_access_key: s3cr3t-in-yaml\n")
    _until_logged(reloading, "IAM config not reloaded", "the broken YAML to be logged")
    assert error_code(newcomer.list_environments) is None
    # YAML, but not a valid directory (a group that does not exist): same.
    config["users"]["nina"]["groups"] = ["no-such-group"]
    write_config(reloading.config_path.parent, config)
    _until_logged(reloading, "unknown group 'no-such-group'", "the unknown group to be logged")
    assert error_code(newcomer.list_environments) is None
    assert "s3cr3t-in-yaml" not in reloading.log_text()

    # Removing the user takes effect the same way.
    del config["users"]["nina"]
    write_config(reloading.config_path.parent, config)
    _until_listing_answers(
        newcomer, "UnrecognizedClientException", "the removed user's key to be refused"
    )
    assert reloading.live.process.pid == pid and reloading.live.process.poll() is None


def test_a_changed_policy_file_is_picked_up(reloading):
    carol = reloading.user("carol")
    assert "Environments" in carol.list_environments()
    policy = reloading.config_path.parent / "policies" / "read-only.json"
    policy.write_text(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "airflow:GetEnvironment", "Resource": "*"}]}'
    )
    _until_listing_answers(
        carol, "AccessDeniedException", "the narrowed policy to deny ListEnvironments"
    )
    policy.write_text((INFRA / "policies" / "read-only.json").read_text())
    _until_listing_answers(carol, None, "the restored policy to allow ListEnvironments")


def test_a_minted_key_dies_with_its_user(reloading):
    minted = airdock("iam", "create-access-key", "amir", "--data-dir", str(reloading.live.data_dir))
    key = json.loads(minted.stdout)["AccessKey"]
    amir = reloading.client((key["AccessKeyId"], key["SecretAccessKey"]))
    assert error_code(amir.list_environments) is None
    config = example_config()
    del config["users"]["amir"]
    write_config(reloading.config_path.parent, config)
    _until_listing_answers(
        amir, "UnrecognizedClientException", "the minted key of the removed user to be refused"
    )


def test_a_broken_config_stops_start_up(tmp_path):
    path = tmp_path / "iam.yaml"
    path.write_text("users:\n  alice:\n    groups: [nowhere]\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--iam-config",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}: users.alice.groups[0]: unknown group 'nowhere'" in done.stderr
    assert not (tmp_path / "data" / "endpoints.json").exists()  # it never served
