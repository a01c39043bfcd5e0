"""Team-scoped authorization with the example config (infra/iam-example.yaml): each team
creates and manages only its own environments; denials name principal, action and resource
and change nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import wait_for_status
from tests.e2e.iam_support import ACCOUNT, REGION, USER_KEYS, unique

pytest_plugins = ["tests.e2e.iam_fixtures"]  # the iam_server and team_params fixtures

ENV_ARN = f"arn:aws:airflow:{REGION}:{ACCOUNT}:environment/"


def _denied(call) -> str:
    """Run a call that must be refused; return the AccessDeniedException message."""
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert error["Code"] == "AccessDeniedException", error
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return error["Message"]


def _message(user: str, action: str, resource: str) -> str:
    return (
        f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: "
        f"airflow:{action} on resource: {resource}"
    )


@pytest.fixture(scope="module")
def a_env(iam_server, team_params) -> str:
    """An AVAILABLE environment of team a, created by alice."""
    name = unique("a-env")
    alice = iam_server.user("alice")
    alice.create_environment(Name=name, **team_params(Tags={"team": "a", "cost": "1"}))
    wait_for_status(alice, name, {"AVAILABLE"}, timeout=60)
    return name


@pytest.fixture(scope="module")
def b_env(iam_server, team_params) -> str:
    """An AVAILABLE environment of team b named b-reporting (dan may open it as Op)."""
    bob = iam_server.user("bob")
    bob.create_environment(Name="b-reporting", **team_params(Tags={"team": "b"}))
    wait_for_status(bob, "b-reporting", {"AVAILABLE"}, timeout=60)
    return "b-reporting"


def _token_role(iam_server, token: str) -> str:
    """The Airflow role the server recorded for a web login token (only its hash is kept)."""
    with sqlite3.connect(iam_server.live.data_dir / "airdock.db") as db:
        row = db.execute(
            "SELECT airflow_role FROM tokens WHERE token_hash = ?",
            (hashlib.sha256(token.encode()).hexdigest(),),
        ).fetchone()
    return row[0]


# --- creating ---------------------------------------------------------------------------------


def test_team_member_creates_only_with_own_team_tag(iam_server, team_params):
    alice = iam_server.user("alice")
    for tags, verdict in (({"team": "b"}, "with an explicit deny"), ({}, "because no identity")):
        name = unique("a-wrong")
        message = _denied(partial(alice.create_environment, Name=name, **team_params(Tags=tags)))
        assert message.startswith(_message("alice", "CreateEnvironment", ENV_ARN + name))
        assert verdict in message
        with pytest.raises(ClientError, match="ResourceNotFound"):
            iam_server.admin().get_environment(Name=name)


def test_pass_role_outside_the_execution_role_path_is_denied(iam_server, team_params):
    alice = iam_server.user("alice")
    name = unique("a-passrole")
    role = f"arn:aws:iam::{ACCOUNT}:role/admin-everything"
    params = team_params(Tags={"team": "a"}, ExecutionRoleArn=role)
    message = _denied(lambda: alice.create_environment(Name=name, **params))
    assert message.startswith(
        f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: iam:PassRole "
        f"on resource: {role}"
    )
    with pytest.raises(ClientError, match="ResourceNotFound"):
        iam_server.admin().get_environment(Name=name)


def test_read_only_users_cannot_create(iam_server, team_params):
    for user in ("amir", "carol"):
        name = unique("ro")
        create = partial(
            iam_server.user(user).create_environment, Name=name, **team_params(Tags={"team": "a"})
        )
        assert _denied(create).startswith(_message(user, "CreateEnvironment", ENV_ARN + name))


# --- managing -----------------------------------------------------------------------------------


def test_owner_team_manages_its_environment(iam_server, a_env, team_params):
    alice = iam_server.user("alice")
    arn = ENV_ARN + a_env
    assert alice.get_environment(Name=a_env)["Environment"]["Tags"]["team"] == "a"
    assert a_env in alice.list_environments()["Environments"]
    alice.tag_resource(ResourceArn=arn, Tags={"owner": "alice"})
    alice.untag_resource(ResourceArn=arn, tagKeys=["owner", "cost"])
    assert alice.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "a"}
    assert alice.create_cli_token(Name=a_env)["CliToken"]
    web = alice.create_web_login_token(Name=a_env)
    assert web["IamIdentity"] == "user/alice" and web["AirflowIdentity"] == "user/alice"
    assert _token_role(iam_server, web["WebToken"]) == "Admin"
    alice.update_environment(Name=a_env, MaxWorkers=3)
    wait_for_status(alice, a_env, {"AVAILABLE"}, timeout=60)
    # Update with a role the team may not pass: refused, the spec stays.
    role = f"arn:aws:iam::{ACCOUNT}:role/admin-everything"
    _denied(lambda: alice.update_environment(Name=a_env, ExecutionRoleArn=role))
    env = alice.get_environment(Name=a_env)["Environment"]
    assert env["ExecutionRoleArn"] == team_params()["ExecutionRoleArn"]
    assert env["Status"] == "AVAILABLE"


def test_owner_cannot_give_away_or_drop_the_team_tag(iam_server, a_env):
    alice = iam_server.user("alice")
    arn = ENV_ARN + a_env
    message = _denied(lambda: alice.tag_resource(ResourceArn=arn, Tags={"team": "b"}))
    assert message.startswith(_message("alice", "TagResource", arn))
    assert "explicit deny" in message
    _denied(lambda: alice.tag_resource(ResourceArn=arn, Tags={"Team": "b"}))
    _denied(lambda: alice.untag_resource(ResourceArn=arn, tagKeys=["team"]))
    assert iam_server.admin().list_tags_for_resource(ResourceArn=arn)["Tags"]["team"] == "a"


def test_other_team_cannot_touch_the_environment(iam_server, a_env):
    bob = iam_server.user("bob")
    arn = ENV_ARN + a_env
    before = iam_server.admin().get_environment(Name=a_env)["Environment"]
    calls = {
        "GetEnvironment": lambda: bob.get_environment(Name=a_env),
        "UpdateEnvironment": lambda: bob.update_environment(Name=a_env, MaxWorkers=9),
        "DeleteEnvironment": lambda: bob.delete_environment(Name=a_env),
        "TagResource": lambda: bob.tag_resource(ResourceArn=arn, Tags={"team": "b"}),
        "UntagResource": lambda: bob.untag_resource(ResourceArn=arn, tagKeys=["team"]),
        "ListTagsForResource": lambda: bob.list_tags_for_resource(ResourceArn=arn),
        "CreateCliToken": lambda: bob.create_cli_token(Name=a_env),
    }
    for action, call in calls.items():
        assert _denied(call).startswith(_message("bob", action, arn)), action
    message = _denied(lambda: bob.create_web_login_token(Name=a_env))
    role_arn = f"arn:aws:airflow:{REGION}:{ACCOUNT}:role/{a_env}/Admin"
    assert message.startswith(_message("bob", "CreateWebLoginToken", role_arn))
    after = iam_server.admin().get_environment(Name=a_env)["Environment"]
    assert after["Tags"] == before["Tags"]
    assert after["MaxWorkers"] == before["MaxWorkers"]
    assert after["Status"] == "AVAILABLE"


def test_admin_can_do_everything(iam_server, team_params, b_env):
    admin = iam_server.admin()
    arn = ENV_ARN + b_env
    assert admin.get_environment(Name=b_env)["Environment"]["Tags"]["team"] == "b"
    admin.tag_resource(ResourceArn=arn, Tags={"audited": "yes"})
    admin.untag_resource(ResourceArn=arn, tagKeys=["audited"])
    assert admin.create_cli_token(Name=b_env)["CliToken"]
    web = admin.create_web_login_token(Name=b_env)
    assert _token_role(iam_server, web["WebToken"]) == "Admin"
    # No team tag and an execution role outside any path: the admin is not limited.
    name = unique("admin-made")
    params = team_params(ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/anything")
    admin.create_environment(Name=name, **params)
    wait_for_status(admin, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=60)
    admin.delete_environment(Name=name)


def test_read_only_users_read_but_do_not_write(iam_server, a_env, b_env):
    for user in ("amir", "carol"):
        client = iam_server.user(user)
        listed = client.list_environments()["Environments"]
        assert {a_env, b_env} <= set(listed)
        assert client.get_environment(Name=b_env)["Environment"]["Name"] == b_env
        assert client.list_tags_for_resource(ResourceArn=ENV_ARN + a_env)["Tags"]["team"] == "a"
        _denied(partial(client.update_environment, Name=a_env, MaxWorkers=4))
        _denied(partial(client.delete_environment, Name=b_env))
        _denied(partial(client.tag_resource, ResourceArn=ENV_ARN + a_env, Tags={"x": "y"}))
        _denied(partial(client.create_cli_token, Name=a_env))


# --- the Airflow web server ----------------------------------------------------------------------


def test_web_login_token_carries_the_highest_allowed_role(iam_server, a_env, b_env):
    amir, carol, dan = (iam_server.user(u) for u in ("amir", "carol", "dan"))
    # amir (analyst, team a): User on team a's environments only.
    web = amir.create_web_login_token(Name=a_env)
    assert web["AirflowIdentity"] == "user/amir" and web["IamIdentity"] == "user/amir"
    assert _token_role(iam_server, web["WebToken"]) == "User"
    _denied(lambda: amir.create_web_login_token(Name=b_env))
    # carol (auditor): Viewer everywhere.
    for env in (a_env, b_env):
        assert _token_role(iam_server, carol.create_web_login_token(Name=env)["WebToken"]) == (
            "Viewer"
        )
    # dan: Op on b-reporting only, by an inline policy.
    assert _token_role(iam_server, dan.create_web_login_token(Name=b_env)["WebToken"]) == "Op"
    message = _denied(lambda: dan.create_web_login_token(Name=a_env))
    role_arn = f"arn:aws:airflow:{REGION}:{ACCOUNT}:role/{a_env}/Admin"
    assert message.startswith(_message("dan", "CreateWebLoginToken", role_arn))


# --- the AWS CLI ---------------------------------------------------------------------------------


def test_aws_cli_as_a_team_member(iam_server, a_env, tmp_path):
    credentials = tmp_path / "credentials"
    key, secret = USER_KEYS["bob"]
    credentials.write_text(
        f"[airdock]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    )
    env = {**iam_server.live.cli_env(), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    binary = str(Path(sys.executable).with_name("aws"))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], env=env, capture_output=True, text=True)

    listed = cli("mwaa", "list-environments")
    assert listed.returncode == 0, listed.stderr
    assert a_env in json.loads(listed.stdout)["Environments"]
    denied = cli("mwaa", "get-environment", "--name", a_env)
    assert denied.returncode != 0
    assert "AccessDeniedException" in denied.stderr
    assert "user/bob is not authorized to perform: airflow:GetEnvironment" in denied.stderr
