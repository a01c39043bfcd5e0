"""Airflow's metadata databases: the embedded PostgreSQL (start, SIGKILL, stale pid file,
adoption) and the per-environment database lifecycle, on the embedded server and on an
external one (marker `postgres`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from environments.airflow.metadb.databases import MetadataDatabases
from environments.airflow.metadb.embedded import EmbeddedPostgres
from tests.conftest import PG_ADMIN_URL, ROOT, postgres_available
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    server = EmbeddedPostgres(tmp_path_factory.mktemp("metadb") / "data")
    server.root.parent.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", pytest.param("external", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "embedded":
        server = request.getfixturevalue("embedded")
        return MetadataDatabases(server.url(), tmp_path)
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    # A prefix of its own: the shared server may hold other tests' environments.
    return MetadataDatabases(PG_ADMIN_URL, tmp_path, prefix=f"t{uuid.uuid4().hex[:8]}")


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=5, autocommit=True)


def test_embedded_server_runs_as_its_own_account_on_loopback(embedded: EmbeddedPostgres):
    assert embedded.alive() and embedded.pid is not None
    with connect(embedded.url()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
    owner = (embedded.pgdata / "PG_VERSION").stat().st_uid
    assert owner != 0 if os.geteuid() == 0 else owner == os.geteuid()
    assert (embedded.root / "superuser").stat().st_mode & 0o777 == 0o600
    with pytest.raises(psycopg.OperationalError, match="password"):
        connect(embedded.url().replace(embedded.password, "wrong"))


def test_an_environment_gets_its_own_database_and_role(databases: MetadataDatabases):
    first, again = databases.ensure("demo"), databases.ensure("demo")
    other = databases.ensure("Demo")  # names differ by case only: still two databases
    try:
        assert first == again and first.database != other.database
        with connect(first.libpq_url()) as conn:
            conn.execute("CREATE TABLE dag (dag_id text)")  # the role owns its database
            assert conn.execute("SELECT current_user").fetchone() == (first.user,)
        # Another environment's role may not even connect.
        intruder = other.libpq_url().rsplit("/", 1)[0] + "/" + first.database
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            connect(intruder)
        assert first.sqlalchemy_url().startswith("postgresql+psycopg2://")
    finally:
        databases.drop("demo")
        databases.drop("Demo")
    assert not databases.exists("demo") and not databases.exists("Demo")
    databases.drop("demo")  # gone already: no error


def test_drop_ends_open_sessions(databases: MetadataDatabases):
    address = databases.ensure("busy")
    holder = connect(address.libpq_url())
    holder.execute("BEGIN")
    holder.execute("CREATE TABLE held (x int)")
    databases.drop("busy")
    assert not databases.exists("busy")
    with pytest.raises(psycopg.OperationalError):
        holder.execute("SELECT 1")
    holder.close()


def test_long_names_fit_postgres_identifiers(databases: MetadataDatabases):
    name = "a" + "b" * 79  # the longest MWAA environment name
    assert len(databases.name_for(name)) <= 63
    assert databases.name_for(name) != databases.name_for(name[:-1] + "c")


def test_sigkilled_server_is_restarted_with_its_data(embedded: EmbeddedPostgres, tmp_path: Path):
    databases = MetadataDatabases(embedded.url, tmp_path)
    address = databases.ensure("survivor")
    with connect(address.libpq_url()) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (x int)")
        conn.execute("INSERT INTO kept VALUES (1)")
    try:
        old = embedded.pid
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: not embedded.alive(), timeout=10, message="the postmaster to die")
        # What the supervisor does with a part that died: stop (reap), then start again.
        embedded.stop()
        embedded.start()
        assert embedded.pid != old
        with connect(address.libpq_url()) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1,)
    finally:
        databases.drop("survivor")


def test_a_new_instance_starts_over_a_stale_pid_file_and_adopts_a_live_server(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = EmbeddedPostgres(data_dir)
    first.start()
    try:
        # A second `airdock serve` after the first was SIGKILLed: the server is adopted.
        second = EmbeddedPostgres(data_dir)
        second.start()
        assert second.pid == first.pid and second.port == first.port
        # Now the server dies by SIGKILL too: its postmaster.pid stays behind.
        os.kill(first.pid, signal.SIGKILL)
        wait_until(lambda: not second.alive(), timeout=10, message="the postmaster to die")
        assert (first.pgdata / "postmaster.pid").exists()
        third = EmbeddedPostgres(data_dir)
        third.start()
        assert third.ready() and third.port == first.port
        # An instance that did not start it stops what a killed server left running.
        other = EmbeddedPostgres(data_dir)
        assert other.stop_left_running()
        assert not third.alive()
        assert not other.stop_left_running()  # nothing is left to stop
        third.stop()
        assert not third.alive()
    finally:
        first.stop()


def test_a_template_is_built_once_closed_for_good_and_copied_as_the_environments_own(
    databases: MetadataDatabases,
):
    name = databases.template_name(f"3.0.6-{uuid.uuid4().hex[:16]}")
    seen: list = []

    def fill(address) -> bool:
        seen.append(address)
        with connect(address.libpq_url()) as conn:
            conn.execute("CREATE TABLE ab_user (username text PRIMARY KEY, password text)")
            conn.execute("INSERT INTO ab_user VALUES ('airdock-service', 'nobody knows')")
        return True

    assert databases.build_template(name, fill)
    assert databases.build_template(name, fill) and len(seen) == 1  # built once
    # The builder's login ended with the build, and nobody connects to the template again.
    with pytest.raises(psycopg.OperationalError):
        connect(seen[0].libpq_url())
    with connect(databases.admin_url) as admin:
        row = admin.execute(
            "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        assert row == (True, False)

    fresh = databases.ensure("copied")
    assert databases.is_empty("copied")
    address = databases.clone("copied", name)
    assert address == fresh and not databases.is_empty("copied")
    with connect(address.libpq_url()) as conn:  # the environment's role owns what it got
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'ab_user'")
        assert owner.fetchone() == (address.user,)
        conn.execute("UPDATE ab_user SET password = 'its own'")
        conn.execute("ALTER TABLE ab_user ADD COLUMN later text")  # as a migration would
    # Another environment's role cannot reach the template, nor the copy.
    other = databases.ensure("other")
    for database in (name, address.database):
        with pytest.raises(psycopg.OperationalError):
            connect(other.libpq_url().rsplit("/", 1)[0] + "/" + database)
    databases.drop("copied")
    databases.drop("other")
    databases.drop_template(name)
    with connect(databases.admin_url) as admin:
        assert not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()


def test_a_template_whose_build_fails_is_not_kept(databases: MetadataDatabases):
    name = databases.template_name(f"2.10.3-{uuid.uuid4().hex[:16]}")
    assert not databases.build_template(name, lambda address: False)
    with connect(databases.admin_url) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)
        ).fetchall()
    assert left == []


BUILDER_THAT_HANGS = """
import sys, time
import psycopg
from environments.airflow.metadb.databases import MetadataDatabases

admin_url, key_dir, prefix, name = sys.argv[1:]

def fill(address):
    with psycopg.connect(address.libpq_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE half_built (n int)")
    print(address.libpq_url(), flush=True)
    time.sleep(600)  # killed here, mid-build

MetadataDatabases(admin_url, key_dir, prefix=prefix).build_template(name, fill)
"""


def checks_passwords(url: str) -> bool:
    """Whether the server refuses `url`'s role with a wrong password."""
    user, rest = url.split("://", 1)[1].split(":", 1)
    try:
        connect(f"postgresql://{user}:wrong-{rest}").close()
    except psycopg.OperationalError:
        return True
    return False


def test_a_builder_killed_mid_build_leaves_no_template_and_the_next_build_starts_clean(
    databases: MetadataDatabases, tmp_path: Path
):
    """SIGKILL a real builder process while its database is half built: nothing it made is
    taken for a template, its login stops working when the next builder starts, and the next
    build starts from an empty database."""
    name = databases.template_name(f"3.0.6-{uuid.uuid4().hex[:16]}")
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILDER_THAT_HANGS, databases.admin_url, str(tmp_path),
         databases.prefix, name],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        killed_login = builder.stdout.readline().strip()
        assert killed_login.startswith("postgresql://"), "the builder did not reach its fill"
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait(timeout=30)
        builder.stdout.close()
    with connect(databases.admin_url) as admin:
        row = admin.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,))
        assert row.fetchone() is None  # the half-built database is not the template

    tables: list = []

    def fill(address) -> bool:
        if checks_passwords(killed_login):  # 127.0.0.1:5432 here trusts every login
            with pytest.raises(psycopg.OperationalError):
                connect(killed_login)  # the dead builder's password was replaced
        with connect(address.libpq_url()) as conn:
            tables.extend(conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = "
                                       "'public'").fetchall())  # fmt: skip
            conn.execute("CREATE TABLE complete (n int)")
        return True

    assert databases.build_template(name, fill)
    assert tables == []  # begun again from nothing, not on top of the half-built one
    with connect(databases.admin_url) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)
        ).fetchall()
        login = admin.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (name,))
        assert left == [(name,)] and login.fetchone() == (False,)
    databases.drop_template(name)
