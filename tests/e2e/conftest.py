"""Fixtures for the end-to-end tests that need a running Airflow.

Starting an Airflow environment costs the suite most of a minute and 1.5-2 GB, so one server with
the runtime serves the whole session, and each Airflow version gets one long-lived environment,
created on first use. Tests that only read, trigger or add DAGs of their own share these; a test
that kills, updates or deletes an environment creates its own on `airflow_live`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import LiveServer, start_server, wait_for_status
from tests.e2e.airflow_support import VIEWER_CONFIG, prerequisites_for_airflow
from tests.e2e.iam_support import write_config
from tests.xdist_units import uses_airflow_live

# The embedded PostgreSQL's first start (initdb) and the server, on a busy machine.
SERVER_WITHIN = 300.0
# A cold uv cache builds Airflow's virtualenv first; a warm one takes well under a minute.
AVAILABLE_WITHIN = 700.0


@dataclass(frozen=True)
class SharedEnvironment:
    live: LiveServer
    name: str
    version: str
    params: dict

    @property
    def bucket(self) -> str:
        return self.params["SourceBucketArn"].split(":::")[1]

    @property
    def role_name(self) -> str:
        return self.params["ExecutionRoleArn"].rsplit("/", 1)[1]


# The session's Airflow server, while it runs; see pytest_runtest_teardown.
_airflow_servers: list[LiveServer] = []


@pytest.fixture(scope="session")
def airflow_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One `airdock serve` with the Airflow runtime, its metadata in the embedded PostgreSQL,
    and an IAM config holding the Viewer-only user (`viewer_mwaa`)."""
    base = tmp_path_factory.mktemp("airflow-shared")
    config = write_config(base / "iam", VIEWER_CONFIG)
    live = start_server(
        base / "data", "--iam-config", str(config), airflow=True, timeout=SERVER_WITHIN
    )
    _airflow_servers.append(live)
    yield live
    live.stop()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the session's Airflow server after the last test that uses it, instead of at the
    end of the session: its idle environments would take CPU from every test after them. The
    tests using it run one after another (tests/xdist_units.py orders them so, with or without
    xdist), so the first test after them that does not use it is the end of them."""
    if not _airflow_servers or not uses_airflow_live(item):
        return
    if not uses_airflow_live(nextitem):
        while _airflow_servers:
            _airflow_servers.pop().stop()


@pytest.fixture(scope="session")
def shared_environment(airflow_live: LiveServer) -> Callable[[str], SharedEnvironment]:
    """`shared_environment("3.0.6")`: that version's session-wide AVAILABLE environment.

    DAGs are unpaused at creation, and scheduler and task logs are on. Leave it running and
    unchanged: add DAGs and inline role policies under names of your own, and remove the
    policies you add.
    """
    made: dict[str, SharedEnvironment] = {}

    def get(version: str = "3.0.6") -> SharedEnvironment:
        if version not in made:
            tag = uuid.uuid4().hex[:8]
            params = prerequisites_for_airflow(airflow_live, tag)
            name = f"shared-{version.replace('.', '')}-{tag}"
            mwaa = airflow_live.mwaa()
            mwaa.create_environment(
                Name=name,
                AirflowVersion=version,
                AirflowConfigurationOptions={"core.dags_are_paused_at_creation": "False"},
                LoggingConfiguration={
                    "SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"},
                    "TaskLogs": {"Enabled": True, "LogLevel": "INFO"},
                },
                **params,
            )
            env = wait_for_status(
                mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=AVAILABLE_WITHIN
            )
            assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
            made[version] = SharedEnvironment(airflow_live, name, version, params)
        return made[version]

    return get
