"""confine(): each available mode, as an attacker inside it would try it. The process reads
its workspace and writes its home, and cannot read the data dir's secrets or another
workspace, nor write outside its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from environments.airflow import sandbox
from environments.plumbing import processes
from environments.workspace import Workspace

PROBE = r"""
import json, os, sys
targets = json.loads(sys.argv[1])
result = {}
for path in targets["read"]:
    try:
        open(path, "rb").read(1)
        result[path] = "read"
    except OSError as error:
        result[path] = "denied"
for path in targets["write"]:
    try:
        with open(path, "w") as handle:
            handle.write("x")
        result[path] = "written"
    except OSError:
        result[path] = "denied"
result["uid"] = os.getuid()
result["secret_variable"] = "AIRDOCK_SECRET" in os.environ
print(json.dumps(result))
"""


def test_confined_process_reaches_its_workspace_only(confined_mode, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "admin.json").write_text("{}")
    (data_dir / "admin.json").chmod(0o600)
    mine = Workspace.for_environment(data_dir, "mine")
    other = Workspace.for_environment(data_dir, "other")
    for workspace in (mine, other):
        sandbox.prepare(workspace)
        (workspace.dags / "dag.py").write_text("# a DAG\n")
        (workspace.dags / "dag.py").chmod(0o640)
    monkeypatch.setenv("AIRDOCK_SECRET", "not for user code")
    targets = {
        "read": [str(mine.dags / "dag.py"), str(data_dir / "admin.json"),
                 str(other.dags / "dag.py")],
        "write": [str(mine.home / "ok"), str(data_dir / "pwned"), str(other.home / "pwned"),
                  str(mine.dags / "pwned.py"), "/etc/airdock-pwned"],
    }  # fmt: skip
    launch = sandbox.confine(
        mine, [sys.executable, "-c", PROBE, json.dumps(targets)], {"PATH": "/usr/bin:/bin"},
        mine.home,
    )  # fmt: skip
    result = processes.run(
        launch.argv, env=launch.env, cwd=launch.cwd, identity=launch.identity(), timeout=60
    )
    assert result.ok, result.output
    seen = json.loads(result.output.strip().splitlines()[-1])
    assert seen.pop(str(mine.dags / "dag.py")) == "read"
    assert seen.pop(str(mine.home / "ok")) == "written"
    assert seen.pop("secret_variable") is False
    uid = seen.pop("uid")
    if confined_mode == sandbox.ACCOUNTS:
        assert uid != 0
    assert set(seen.values()) == {"denied"}, seen
    for path in targets["write"][1:]:
        assert not Path(path).exists()


def test_account_names_are_stable_and_distinct(tmp_path):
    one = Workspace.for_environment(tmp_path / "a", "env")
    assert sandbox.account_name(one) == sandbox.account_name(Workspace(one.root))
    assert sandbox.account_name(one) != sandbox.account_name(
        Workspace.for_environment(tmp_path / "b", "env")
    )
    assert len(sandbox.account_name(one)) <= 32  # the longest name useradd takes


def test_requirements_install_as_the_environment(confined_mode, tmp_path):
    """requirements.txt installs confined, with a cache of the environment's own; Airflow from
    the lock comes from the shared cache, which the confined install can never change."""
    from environments.airflow.venv_store import remove_venvs
    from environments.airflow.venvs import build_venv
    from tests.conftest import TEST_UV_CACHE

    workspace = Workspace.for_environment(tmp_path / "data", "builder")
    sandbox.prepare(workspace)
    try:
        result = build_venv(
            workspace.venv, "3.0.6", b"tomli-w\n", cache_dir=TEST_UV_CACHE, workspace=workspace
        )
        assert result.ok, result.output
        assert "installing requirements.txt as the environment" in result.output
        venv = result.venv_path
        lock_file = next((venv / "lib").glob("python*/site-packages/airflow/__init__.py"))
        added = next((venv / "lib").glob("python*/site-packages/tomli_w/__init__.py"))
        if confined_mode == sandbox.ACCOUNTS:
            account = sandbox.prepare(workspace)
            assert lock_file.stat().st_uid == 0 and not lock_file.stat().st_mode & 0o022
            assert added.stat().st_uid == account.uid
        else:
            assert lock_file.stat().st_nlink == 1  # a copy, not a link into the shared cache
        assert (store := workspace.venv.parent / ".venv.d" / ".uv-cache").is_dir(), store
    finally:
        remove_venvs(workspace.venv)
