"""The ready-made team policies in infra/: they load, and they say what their names promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import iam
from controlplane.iam_config import read_config

INFRA = Path(__file__).resolve().parents[2] / "infra"
POLICIES = sorted((INFRA / "policies").glob("*.json"))
ACCOUNT = "123456789012"
ENV = f"arn:aws:airflow:us-east-1:{ACCOUNT}:environment/"
ROLE = f"arn:aws:airflow:us-east-1:{ACCOUNT}:role/"


def test_there_are_policies():
    names = {p.name for p in POLICIES}
    assert {"team-full-access.json", "read-only.json", "web-server-viewer.json"} <= names


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_policy_file_parses(path: Path):
    policy = iam.parse_policy(path.read_text(), name=path.name)
    assert policy.version == "2012-10-17"
    assert json.loads(path.read_text())["Statement"]


@pytest.fixture(scope="module")
def directory() -> iam.Directory:
    return read_config(INFRA / "iam-example.yaml", ACCOUNT)


def _decide(directory, user, action, resource, **context) -> iam.Decision:
    return iam.authorize(directory.user_principal(user), action, resource, context)


def test_example_config_loads_with_two_teams(directory):
    assert directory.users["alice"].tags == {"team": "a"}
    assert directory.users["bob"].tags == {"team": "b"}
    assert set(directory.groups) >= {"team-a", "team-b"}


def test_team_policy_scopes_create_and_manage(directory):
    allow, deny = iam.Decision.ALLOW, iam.Decision.EXPLICIT_DENY
    create = "airflow:CreateEnvironment"
    own = {"aws:RequestTag/team": "a", "aws:TagKeys": ["team"]}
    other = {"aws:RequestTag/team": "b", "aws:TagKeys": ["team"]}
    assert _decide(directory, "alice", create, ENV + "x", **own) is allow
    assert _decide(directory, "alice", create, ENV + "x", **other) is deny
    assert _decide(directory, "alice", create, ENV + "x") is iam.Decision.IMPLICIT_DENY
    for action in ("GetEnvironment", "UpdateEnvironment", "DeleteEnvironment", "CreateCliToken"):
        tags = {"aws:ResourceTag/team": "a"}
        assert _decide(directory, "alice", f"airflow:{action}", ENV + "x", **tags) is allow
        assert _decide(directory, "bob", f"airflow:{action}", ENV + "x", **tags) is not allow


def test_team_tag_cannot_be_changed_or_removed(directory):
    tags = {"aws:ResourceTag/team": "a"}
    retag = {**tags, "aws:RequestTag/Team": "b", "aws:TagKeys": ["Team"]}
    assert _decide(directory, "alice", "airflow:TagResource", ENV + "x", **retag) is (
        iam.Decision.EXPLICIT_DENY
    )
    untag = {**tags, "aws:TagKeys": ["team"]}
    assert _decide(directory, "alice", "airflow:UntagResource", ENV + "x", **untag) is (
        iam.Decision.EXPLICIT_DENY
    )
    other_key = {**tags, "aws:RequestTag/cost": "1", "aws:TagKeys": ["cost"]}
    assert _decide(directory, "alice", "airflow:TagResource", ENV + "x", **other_key) is (
        iam.Decision.ALLOW
    )


def test_pass_role_only_for_execution_roles(directory):
    to_airflow = {"iam:PassedToService": "airflow.amazonaws.com"}
    good = f"arn:aws:iam::{ACCOUNT}:role/service-role/MWAA-Execution-a"
    bad = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    assert _decide(directory, "alice", "iam:PassRole", good, **to_airflow).allowed
    assert not _decide(directory, "alice", "iam:PassRole", bad, **to_airflow).allowed
    to_ec2 = {"iam:PassedToService": "ec2.amazonaws.com"}
    assert not _decide(directory, "alice", "iam:PassRole", good, **to_ec2).allowed


def test_read_only_and_web_server_policies(directory):
    read = ("airflow:ListEnvironments", "airflow:GetEnvironment", "airflow:ListTagsForResource")
    for action in read:
        assert _decide(directory, "carol", action, ENV + "x").allowed
    assert not _decide(directory, "carol", "airflow:UpdateEnvironment", ENV + "x").allowed
    web = "airflow:CreateWebLoginToken"
    assert _decide(directory, "carol", web, ROLE + "x/Viewer").allowed
    assert not _decide(directory, "carol", web, ROLE + "x/User").allowed
    team_a = {"aws:ResourceTag/team": "a"}
    assert _decide(directory, "amir", web, ROLE + "x/User", **team_a).allowed
    assert not _decide(directory, "bea", web, ROLE + "x/User", **team_a).allowed
    assert _decide(directory, "dan", web, ROLE + "b-reporting/Op").allowed
    assert not _decide(directory, "dan", web, ROLE + "b-other/Op").allowed
