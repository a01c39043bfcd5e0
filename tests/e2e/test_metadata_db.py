"""Airflow's metadata databases through a live server: the embedded PostgreSQL is supervised
(SIGKILL -> restarted, shown in /_airdock/health) and stopped with the server; an environment's
database is made on create and dropped on delete, on the embedded server and on an external
one given by --airflow-database-url."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
import uuid

import psycopg
import pytest

from controlplane.server.status import read_status
from environments.airflow.metadb.databases import MetadataDatabases, libpq_url
from tests.conftest import (
    PG_ADMIN_URL,
    make_prerequisites,
    postgres_available,
    start_server,
    wait_for_status,
    wait_gone,
)
from tests.e2e.airflow_support import embedded_admin_url
from tests.waiting import wait_until

# Each test creates a real Airflow environment.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def health(live) -> dict:
    with urllib.request.urlopen(live.url + "/_airdock/health", timeout=5) as answer:
        return json.loads(answer.read())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def database_names(admin_url: str) -> set[str]:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def create_and_delete(live, name: str, admin_url: str, database: str) -> None:
    mwaa = live.mwaa()
    mwaa.create_environment(Name=name, **make_prerequisites(live), AirflowVersion="3.0.6")
    wait_for_status(mwaa, name, {"AVAILABLE"}, timeout=600)
    assert database in database_names(admin_url)
    mwaa.delete_environment(Name=name)
    wait_gone(mwaa, name, timeout=120)
    assert database not in database_names(admin_url)


def metadata_part(live) -> dict:
    """The supervisor's record of the embedded PostgreSQL (with its pid)."""
    return read_status(live.data_dir)["parts"]["metadata_database"]


def test_embedded_server_is_supervised_and_holds_each_environment(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("metadb") / "data", airflow=True)
    try:
        first = metadata_part(live)
        assert first["state"] == "up" and first["restarts"] == 0
        assert health(live)["parts"]["metadata_database"]["state"] == "up"
        os.kill(first["pid"], signal.SIGKILL)
        again = wait_until(
            lambda: (lambda part: part if part["restarts"] >= 1 and part["state"] == "up"
                     else None)(metadata_part(live)),
            timeout=60,
            message="the killed PostgreSQL to be restarted",
        )  # fmt: skip
        assert again["pid"] != first["pid"]
        create_and_delete(live, "meta", embedded_admin_url(live.data_dir), "airflow-meta")
    finally:
        live.stop()
    assert not pid_alive(again["pid"]), "a clean shutdown stops the embedded PostgreSQL"


def test_a_test_server_killed_by_sigkill_leaves_no_postgresql_behind(tmp_path_factory):
    # `airdock serve` leaves its PostgreSQL running when it is SIGKILLed, for the next start to
    # adopt; the tests' harness must stop it, or every killed test server leaks one.
    live = start_server(tmp_path_factory.mktemp("metadb-kill") / "data", airflow=True)
    try:
        postmaster = metadata_part(live)["pid"]
        assert pid_alive(postmaster)
    finally:
        live.stop(signal.SIGKILL)
    # Stopped by then; init reaps it a moment later (until then it is a zombie).
    wait_until(lambda: not pid_alive(postmaster), timeout=10,
               message="the killed server's PostgreSQL to be gone")  # fmt: skip


@pytest.mark.postgres
def test_external_server_holds_each_environment(tmp_path_factory):
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    name = f"ext{uuid.uuid4().hex[:8]}"
    live = start_server(
        tmp_path_factory.mktemp("metadb-ext") / "data",
        "--airflow-database-url",
        PG_ADMIN_URL,
        airflow=True,
    )
    try:
        assert "metadata_database" not in health(live)["parts"]  # nothing of ours to supervise
        assert not (live.data_dir / "postgres").exists()
        database = MetadataDatabases(PG_ADMIN_URL, live.data_dir).name_for(name)
        create_and_delete(live, name, PG_ADMIN_URL, database)
    finally:
        live.stop()
