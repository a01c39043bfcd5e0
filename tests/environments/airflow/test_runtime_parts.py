"""The runtime's parts that need no Airflow: configuration layers, the plan's restart key,
pid files against real processes, and the log level filter."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from environments.airflow.runtime import configuration, pidfiles
from environments.airflow.runtime.components import fixed_components, worker
from environments.airflow.runtime.configuration import component_environment, option_variable
from environments.airflow.runtime.logship import line_level
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.templates import lock_only
from environments.airflow.venv_store import mark_complete
from environments.plumbing import processes

SECRETS = {"fernet_key": "f", "secret_key": "s", "jwt_secret": "j"}


def plan(tmp_path: Path, **changes: object) -> RuntimePlan:
    base = RuntimePlan(
        name="demo",
        env_id="abc123",
        airflow_version="3.0.6",
        environment_class="mw1.medium",
        schedulers=2,
        min_workers=1,
        max_workers=3,
        options={"core.parallelism": "7", "scheduler.task_queued_timeout": "60"},
        logging={},
        execution_role_arn="arn:aws:iam::123456789012:role/exec",
        queue_url="http://127.0.0.1:5000/123456789012/airflow-celery-abc123",
        queue_name="airflow-celery-abc123",
        region="eu-west-1",
        account_id="123456789012",
        aws_endpoint="http://127.0.0.1:5000",
        venv=tmp_path / "venv",
        workspace=tmp_path / "ws",
        database_url="postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_abc123",
    )
    return dataclasses.replace(base, **changes)


def environment(p: RuntimePlan, exports: dict[str, str] | None = None) -> dict[str, str]:
    return component_environment(
        p,
        "worker",
        startup_exports=exports or {},
        api_port=8123,
        secrets=SECRETS,
        aws_config=Path("/c"),
        aws_credentials=Path("/k"),
    )


def test_layers_user_options_override_defaults_but_not_essentials(tmp_path: Path) -> None:
    p = plan(tmp_path)
    env = environment(p, {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "MY_VAR": "x"})
    assert env["AIRFLOW__CORE__PARALLELISM"] == "7"
    assert env["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"] == "60"  # MWAA default overridden
    assert env["MY_VAR"] == "x"  # a startup export
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"  # essentials win
    assert env["AIRFLOW__CELERY__WORKER_AUTOSCALE"] == "10,10"  # mw1.medium
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "airflow-celery-abc123"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + p.database_url
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "eu-west-1"
    assert env["AIRFLOW_ENV_NAME"] == "demo" and env["MWAA_AIRFLOW_COMPONENT"] == "worker"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRDOCK_CELERY_SECURE"] == "false"
    # Bytecode goes to the environment's home, never into the shared venv or the DAG folder.
    assert env["PYTHONPYCACHEPREFIX"] == str(p.workspace / "home" / ".pycache")
    # Nothing of the control plane's own environment (keys, tokens) reaches the process.
    assert not {k for k in env if k.startswith("AWS_ACCESS") or k.startswith("AWS_SECRET")}


def test_airflow_2_gets_a_webserver_and_no_execution_api(tmp_path: Path) -> None:
    p = plan(tmp_path, airflow_version="2.10.3", environment_class="mw1.micro")
    env = environment(p)
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL" not in env
    assert env["AIRFLOW__WEBSERVER__WEB_SERVER_PORT"] == "8123"
    assert env["AIRFLOW__CELERY__WORKER_AUTOSCALE"] == "3,3"
    kinds = [c.kind for c in fixed_components(p)]
    assert kinds == ["scheduler", "scheduler", "dag-processor", "triggerer", "webserver"]


def test_option_names_become_airflow_variables() -> None:
    assert option_variable("core.dags_are_paused_at_creation") == (
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"
    )


def test_restart_key_ignores_the_worker_count_only(tmp_path: Path) -> None:
    p = plan(tmp_path)
    assert p.restart_key() == plan(tmp_path, min_workers=4, max_workers=9).restart_key()
    assert p.restart_key() != plan(tmp_path, options={"core.parallelism": "8"}).restart_key()
    assert p.restart_key() != plan(tmp_path, venv=tmp_path / "other").restart_key()
    assert worker(p, 2).name == "worker-2" and "airflow-celery-abc123" in worker(p, 2).command


def test_recorded_groups_are_stopped_and_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    child = processes.spawn(["sleep", "600"])
    grandchild_parent = processes.spawn(["bash", "-c", "sleep 600 & wait"])
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        pidfiles.record(folder, "scheduler-1", child.pid)
        pidfiles.record(folder, "worker-1", grandchild_parent.pid)
        # A pid file whose start time does not match is someone else's process now.
        (folder / "triggerer.pid").write_text(json.dumps({"pid": bystander.pid, "start_time": 1}))
        assert set(pidfiles.live_groups(folder)) == {"scheduler-1", "worker-1"}
        stopped = pidfiles.stop_recorded(folder, grace=5)
        assert stopped == ["scheduler-1", "worker-1"]
        assert child.wait(5) is not None and grandchild_parent.wait(5) is not None
        assert bystander.poll() is None
        assert not list(folder.glob("*.pid"))
    finally:
        for process in (child, grandchild_parent, bystander):
            process.kill()
            process.wait()


def test_log_levels_are_read_from_airflow_lines() -> None:
    assert line_level("[2026-01-01T00:00:00.000+0000] {scheduler.py:1} INFO - Starting") == 20
    assert line_level("2026-01-01 00:00:00 [warning  ] slow parse") == 30
    assert line_level("[2026-01-01] {x.py:2} ERROR - boom") == 40
    assert line_level("plain text") is None


FORKS = """
import gc, os


def fork_and_report() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0 if gc.get_freeze_count() > 0 else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


before = gc.get_freeze_count()
first = fork_and_report()
frozen = gc.get_freeze_count()
made_since = [[n] for n in range(10000)]  # new objects, collectable as before
second = fork_and_report()
print(before, first, frozen > 0, second, gc.get_freeze_count() == frozen)
"""


def test_forked_children_inherit_frozen_objects(tmp_path: Path) -> None:
    """The fork hook every Airflow process of an environment imports (as `sitecustomize`)."""
    support = tmp_path / ".airdock"
    support.mkdir()
    target = support / f"{configuration.FORK_SHARING_MODULE}.py"
    target.write_bytes(configuration.FORK_SHARING_SOURCE.read_bytes())
    # One that requirements.txt brought, further down the path, still runs.
    theirs = tmp_path / "site-packages"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import sys\nsys.stderr.write('a later sitecustomize ran')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", FORKS],
        env={"PYTHONPATH": f"{support}:{theirs}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "a later sitecustomize ran" in done.stderr
    # Nothing is frozen before the first fork; from it on, the child and the parent hold the
    # objects they share frozen, so neither collector writes to those pages. A later fork
    # freezes nothing more: what the parent made since stays collectable.
    assert done.stdout.split() == ["0", "0", "True", "0", "True"], done.stderr


def test_only_a_venv_of_the_lock_alone_gets_a_schema_template(tmp_path: Path) -> None:
    """A template is copied into every environment of its venv, so it is built only by a
    venv whose every package came from Airdock's lock (runtime.templates)."""
    venv = tmp_path / "3.0.6-abc"
    assert not lock_only(venv)  # no marker: not a finished venv
    for recorded, trusted in (("none", True), ("installed", False)):
        mark_complete(venv, spec_hash="abc", airflow_version="3.0.6", requirements=recorded)
        assert lock_only(venv) is trusted
    mark_complete(venv, spec_hash="abc", airflow_version="3.0.6")  # built before the field
    assert not lock_only(venv)
