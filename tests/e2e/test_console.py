"""The web console over plain HTTP, as an attacker and as each team sees it: sessions, CSRF,
and authorization through the same policies as the API."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from controlplane.console import sessions
from tests.conftest import wait_for_status
from tests.e2e.console_support import csrf_of, page_csrf, signed_in
from tests.e2e.iam_support import USER_KEYS, airdock, unique
from tests.waiting import wait_until

pytest_plugins = ["tests.e2e.iam_fixtures"]  # the iam_server and team_params fixtures


@pytest.fixture(scope="module")
def team_envs(iam_server, team_params) -> dict[str, str]:
    """An AVAILABLE environment for team a (by alice) and one for team b (by bob)."""
    names = {}
    for team, user in (("a", "alice"), ("b", "bob")):
        name = unique(f"console-{team}")
        client = iam_server.user(user)
        client.create_environment(Name=name, **team_params(Tags={"team": team}))
        wait_for_status(client, name, {"AVAILABLE"}, timeout=60)
        names[team] = name
    return names


def test_without_a_session_every_page_leads_to_sign_in(iam_server, team_envs):
    anonymous = httpx.Client(base_url=iam_server.live.url)
    for path in ("/console", f"/console/environments/{team_envs['a']}"):
        answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    fragment = anonymous.get("/console/fragments/environments", headers={"x-console-fragment": "1"})
    assert fragment.status_code == 401
    anonymous.cookies.set(
        sessions.COOKIE, "AKIATESTALICE0000000.9999999999.n.forgedmac", path="/console"
    )
    forged = anonymous.post(
        f"/console/environments/{team_envs['a']}/delete",
        data={"csrf": "x", "confirm_name": team_envs["a"]},
    )
    assert forged.status_code == 303 and forged.headers["location"] == "/console/sign-in"
    assert iam_server.admin().get_environment(Name=team_envs["a"])["Environment"]["Status"] == (
        "AVAILABLE"
    )


def test_a_wrong_secret_or_a_forged_sign_in_is_refused(iam_server):
    client = httpx.Client(base_url=iam_server.live.url)
    token = csrf_of(client.get("/console/sign-in").text)
    wrong = client.post(
        "/console/sign-in",
        data={"csrf": token, "access_key_id": USER_KEYS["alice"][0], "secret_access_key": "no"},
    )
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert sessions.COOKIE not in client.cookies
    other = httpx.Client(base_url=iam_server.live.url)  # no sign-in cookie of its own
    cross = other.post(
        "/console/sign-in",
        data={
            "csrf": token,
            "access_key_id": USER_KEYS["alice"][0],
            "secret_access_key": USER_KEYS["alice"][1],
        },
    )
    assert cross.status_code == 403 and sessions.COOKIE not in other.cookies


def test_the_session_cookie_is_httponly_and_strict(iam_server):
    client = signed_in(iam_server.live, USER_KEYS["alice"])
    answer = client.get("/console/sign-in")  # any page; read the cookie's attributes at sign-in
    assert answer.status_code == 200
    fresh = httpx.Client(base_url=iam_server.live.url)
    token = csrf_of(fresh.get("/console/sign-in").text)
    signed = fresh.post(
        "/console/sign-in",
        data={
            "csrf": token,
            "access_key_id": USER_KEYS["alice"][0],
            "secret_access_key": USER_KEYS["alice"][1],
        },
    )
    cookie = next(
        v
        for k, v in signed.headers.multi_items()
        if k == "set-cookie" and sessions.COOKIE + "=" in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert USER_KEYS["alice"][1] not in cookie


def test_missing_or_forged_csrf_is_403_and_changes_nothing(iam_server, team_envs):
    name = team_envs["a"]
    alice = signed_in(iam_server.live, USER_KEYS["alice"])
    path = f"/console/environments/{name}"
    for token in (None, "forged", csrf_of(httpx.Client(base_url=iam_server.live.url).get(
        "/console/sign-in").text)):  # fmt: skip
        data = {"min_workers": "1", "max_workers": "7", "confirm_name": name}
        if token is not None:
            data["csrf"] = token
        assert alice.post(f"{path}/workers", data=data).status_code == 403
        assert alice.post(f"{path}/delete", data=data).status_code == 403
    # Another session's token does not work in this one either.
    bob_token = page_csrf(signed_in(iam_server.live, USER_KEYS["bob"]), "/console")
    data = {"csrf": bob_token, "min_workers": "1", "max_workers": "7"}
    assert alice.post(f"{path}/workers", data=data).status_code == 403
    env = iam_server.admin().get_environment(Name=name)["Environment"]
    assert env["Status"] == "AVAILABLE" and env["MaxWorkers"] != 7


def test_a_team_user_sees_and_acts_only_on_its_own_team(iam_server, team_envs):
    alice = signed_in(iam_server.live, USER_KEYS["alice"])
    listing = alice.get("/console").text
    assert team_envs["a"] in listing and team_envs["b"] not in listing
    other = f"/console/environments/{team_envs['b']}"
    page = alice.get(other)
    assert page.status_code == 403 and "AccessDeniedException" in page.text
    assert "user/alice is not authorized to perform: airflow:GetEnvironment" in page.text
    token = page_csrf(alice, "/console")
    for action, data in (
        ("workers", {"min_workers": "1", "max_workers": "9"}),
        ("delete", {"confirm_name": team_envs["b"]}),
        ("airflow-ui", {}),
    ):
        refused = alice.post(f"{other}/{action}", data={"csrf": token, **data})
        assert refused.status_code == 403 and "AccessDeniedException" in refused.text, action
    env = iam_server.admin().get_environment(Name=team_envs["b"])["Environment"]
    assert env["Status"] == "AVAILABLE" and env["MaxWorkers"] != 9


def test_a_viewer_reads_everything_and_changes_nothing(iam_server, team_envs):
    carol = signed_in(iam_server.live, USER_KEYS["carol"])
    listing = carol.get("/console").text
    assert team_envs["a"] in listing and team_envs["b"] in listing
    page = carol.get(f"/console/environments/{team_envs['a']}").text
    assert "do not allow airflow:DeleteEnvironment" in page
    assert "do not allow airflow:UpdateEnvironment" in page
    assert 'title="Your policies do not allow airflow:UpdateEnvironment"' in page
    token = csrf_of(page)
    refused = carol.post(
        f"/console/environments/{team_envs['a']}/delete",
        data={"csrf": token, "confirm_name": team_envs["a"]},
    )
    assert refused.status_code == 403 and "AccessDeniedException" in refused.text
    ui = carol.post(f"/console/environments/{team_envs['a']}/airflow-ui", data={"csrf": token})
    assert ui.status_code == 200 and "<b>Viewer</b>" in ui.text
    assert "/aws_mwaa/aws-console-sso?login=true#" in ui.text


def test_bad_worker_values_are_refused_with_the_api_message(iam_server, team_envs):
    alice = signed_in(iam_server.live, USER_KEYS["alice"])
    path = f"/console/environments/{team_envs['a']}"
    token = page_csrf(alice, path)
    letters = alice.post(f"{path}/workers", data={"csrf": token, "min_workers": "x"})
    assert letters.status_code == 400 and "whole number" in letters.text
    crossed = alice.post(
        f"{path}/workers", data={"csrf": token, "min_workers": "5", "max_workers": "2"}
    )
    assert crossed.status_code == 400 and "ValidationException" in crossed.text
    unconfirmed = alice.post(f"{path}/delete", data={"csrf": token, "confirm_name": "nope"})
    assert unconfirmed.status_code == 400
    env = iam_server.admin().get_environment(Name=team_envs["a"])["Environment"]
    assert env["Status"] == "AVAILABLE"


def test_signing_out_ends_the_session(iam_server):
    alice = signed_in(iam_server.live, USER_KEYS["alice"])
    token = page_csrf(alice, "/console")
    assert alice.post("/console/sign-out", data={"csrf": token}).status_code == 303
    assert sessions.COOKIE not in alice.cookies
    assert alice.get("/console").status_code == 303


def test_log_tails_follow_the_log_policies(iam_server, team_params):
    """alice's team policy lets her read her environment's log groups; carol's read-only
    policies do not reach CloudWatch Logs."""
    name = unique("console-logs")
    alice_api = iam_server.user("alice")
    logging = {"SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"}}
    alice_api.create_environment(
        Name=name, **team_params(Tags={"team": "a"}, LoggingConfiguration=logging)
    )
    wait_for_status(alice_api, name, {"AVAILABLE"}, timeout=60)
    logs = iam_server.live.aws("logs")
    group = f"airflow-{name}-Scheduler"
    logs.create_log_stream(logGroupName=group, logStreamName="scheduler_probe")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="scheduler_probe",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "probe line 42"}],
    )
    alice = signed_in(iam_server.live, USER_KEYS["alice"]).get(f"/console/environments/{name}")
    assert "scheduler_probe: probe line 42" in alice.text
    carol = signed_in(iam_server.live, USER_KEYS["carol"]).get(f"/console/environments/{name}")
    assert group in carol.text and "probe line 42" not in carol.text
    assert "do not allow logs:FilterLogEvents" in carol.text


def test_deleting_the_access_key_ends_its_sessions(iam_server):
    data_dir = str(iam_server.live.data_dir)
    minted = airdock("iam", "create-access-key", "bea", "--data-dir", data_dir)
    key = json.loads(minted.stdout)["AccessKey"]
    bea = signed_in(iam_server.live, (key["AccessKeyId"], key["SecretAccessKey"]))
    assert bea.get("/console").status_code == 200
    airdock("iam", "delete-access-key", key["AccessKeyId"], "--data-dir", data_dir)
    wait_until(
        lambda: bea.get("/console").status_code == 303,
        timeout=5,
        message="the console session of a deleted key to end",
    )


def test_pages_refuse_to_be_framed(iam_server):
    page = httpx.get(f"{iam_server.live.url}/console/sign-in")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
