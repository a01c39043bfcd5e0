"""The identity bridge's parts that need no Airflow: user names, derived passwords, the
auth configuration per Airflow major, the endpoint read from the runtime's files, and how an
InvokeRestApi request is checked and its answer shaped."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import httpx
import pytest

from environments.airflow.access.endpoint import NotRunning, read_endpoint
from environments.airflow.access.rest import api_path, query_parameters, response_document
from environments.airflow.runtime import identity
from environments.airflow.runtime.configuration import auth
from environments.airflow.runtime.manager import SECRETS_FILE, STATUS_FILE, AirflowRuntime
from environments.errors import ValidationException
from environments.workspace import Workspace
from tests.environments.airflow.test_runtime_parts import plan


def test_user_names_are_one_per_identity_and_role_and_never_collide() -> None:
    assert identity.username_for("user/alice", "Viewer") == "user~alice~Viewer"
    assert identity.username_for("assumed-role/a.b/c", "Admin") == "assumed-role~a.b~c~Admin"
    # '.' and '/' stay apart, so two identities never share a user.
    assert identity.username_for("assumed-role/a/b.c", "Admin") != identity.username_for(
        "assumed-role/a.b/c", "Admin"
    )
    for hostile in ("user/a~Admin", "user:alice", "", "user/a\nb"):
        with pytest.raises(ValueError):
            identity.username_for(hostile, "Viewer")
    with pytest.raises(ValueError, match="role"):
        identity.username_for("user/alice", "Superuser")


def test_passwords_derive_from_the_environments_secret_and_never_show() -> None:
    one = identity.password_for("key-1", "user~alice~Admin")
    assert one == identity.password_for("key-1", "user~alice~Admin")
    assert one != identity.password_for("key-2", "user~alice~Admin")
    assert one != identity.password_for("key-1", "user~alice~Viewer")
    login = identity.service_login("key-1")
    assert login.username == identity.SERVICE_USER
    assert login.password not in repr(login) and "***" in repr(login)


def test_auth_is_fab_on_both_majors(tmp_path: Path) -> None:
    three = auth(plan(tmp_path))
    assert three["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    assert "basic_auth" in three["AIRFLOW__FAB__AUTH_BACKENDS"]
    two = auth(plan(tmp_path, airflow_version="2.10.3"))
    backends = two["AIRFLOW__API__AUTH_BACKENDS"].split(",")
    assert backends[0].endswith(".session") and backends[1].endswith(".basic_auth")


def test_secrets_gain_the_access_key_and_keep_the_rest(tmp_path: Path) -> None:
    workspace = Workspace.for_environment(tmp_path, "demo")
    workspace.write_json(SECRETS_FILE, {"fernet_key": "f", "secret_key": "s", "jwt_secret": "j"})
    made = AirflowRuntime._secrets(workspace)
    assert made["fernet_key"] == "f" and made[identity.SECRET_NAME]
    assert AirflowRuntime._secrets(workspace) == made
    assert stat.S_IMODE((workspace.state / SECRETS_FILE).stat().st_mode) == 0o600


def test_endpoint_comes_from_the_runtimes_files(tmp_path: Path) -> None:
    workspace = Workspace.for_environment(tmp_path, "demo")
    with pytest.raises(NotRunning):
        read_endpoint(tmp_path, "demo")
    workspace.write_json(STATUS_FILE, {"api_port": 41234, "airflow_version": "2.10.3"})
    workspace.write_json(SECRETS_FILE, {identity.SECRET_NAME: "k"})
    endpoint = read_endpoint(tmp_path, "demo")
    assert (endpoint.base_url, endpoint.api_root) == ("http://127.0.0.1:41234", "/api/v1")
    assert "k" not in repr(endpoint)
    three = dataclasses.replace(endpoint, major=3)
    assert three.api_root == "/api/v2"
    workspace.write_json(STATUS_FILE, {"status": "stopped", "components": {}})
    with pytest.raises(NotRunning):
        read_endpoint(tmp_path, "demo")


@pytest.mark.parametrize(
    "path", ["/../auth/token", "/dags/%2e%2e/x", "/dags?limit=1", "/dags#x", "/da gs", "/a\x00"]
)
def test_paths_stay_under_the_api_root(path: str) -> None:
    with pytest.raises(ValidationException):
        api_path(path)


def test_paths_and_queries_as_airflow_takes_them() -> None:
    assert api_path("dags") == "/dags"
    assert api_path("/dags/my_dag/dagRuns") == "/dags/my_dag/dagRuns"
    pairs = query_parameters({"limit": 5, "only_active": True, "tags": ["a", "b"], "x": None})
    assert pairs == [("limit", "5"), ("only_active", "true"), ("tags", "a"), ("tags", "b")]
    for bad in ({"a": {"b": 1}}, ["limit"], {"a": [[1]]}):
        with pytest.raises(ValidationException):
            query_parameters(bad)


def test_answers_become_json_documents() -> None:
    def shaped(body: bytes, kind: str = "application/json") -> object:
        response = httpx.Response(200, content=body, headers={"content-type": kind})
        return response_document(response, body)

    assert shaped(json.dumps({"dags": []}).encode()) == {"dags": []}
    assert shaped(b"") == {}
    assert shaped(b"<html>oops</html>", "text/html; charset=utf-8") == "<html>oops</html>"
    assert shaped(b"\xff\xfe", "application/octet-stream") == "\ufffd\ufffd"
