"""Each environment's Airflow metadata database: created when the environment is, dropped with it.

Every environment gets a database and a login role of the same name, which owns it; no other
role may connect to it. The role's password is derived from a key kept in the data dir
(`metadb.key`, 0600), so asking again for the same environment gives the same URL and no
password needs storing. Replicas that share an external server must share that key.

The same code works against the embedded server and an external one given by
`--airflow-database-url` (a superuser, or a role with CREATEDB and CREATEROLE).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from environments.plumbing.files import create_once

KEY_FILE = "metadb.key"
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


@dataclass(frozen=True)
class DatabaseAddress:
    """Where one environment's metadata lives, and the credentials to reach it."""

    host: str
    port: int
    database: str
    user: str
    password: str

    def sqlalchemy_url(self, driver: str = "psycopg2") -> str:
        """The URL Airflow takes as `sql_alchemy_conn` (the postgres provider brings psycopg2)."""
        return (
            f"postgresql+{driver}://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(self.database, safe='')}"
        )

    def libpq_url(self) -> str:
        return self.sqlalchemy_url().replace("postgresql+psycopg2://", "postgresql://", 1)


def _fit(name: str, *, digest_of: str) -> str:
    """`name` if PostgreSQL takes it whole, else cut short and made unique by a digest."""
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(digest_of.encode()).hexdigest()[:12]
    return f"{name[: MAX_IDENTIFIER - 13]}-{digest}"


def libpq_url(url: str) -> str:
    """`postgresql+driver://...` as libpq (psycopg) reads it: `postgresql://...`."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith(("postgresql", "postgres")) else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme))


class MetadataDatabases:
    """Creates and drops per-environment databases on one PostgreSQL server.

    `admin_url` is a libpq or SQLAlchemy URL of a role allowed to create databases and roles,
    or a function giving it (read when needed: the embedded server's may not exist yet).
    `prefix` starts every database and role name, so several Airdock installations can share
    an external server.
    """

    def __init__(
        self, admin_url: str | Callable[[], str], key_dir: Path, *, prefix: str = "airflow"
    ) -> None:
        self._admin_url = admin_url
        self.prefix = prefix
        create_once(Path(key_dir) / KEY_FILE, secrets.token_hex(32).encode())
        self._key = (Path(key_dir) / KEY_FILE).read_bytes().strip()

    @property
    def admin_url(self) -> str:
        url = self._admin_url if isinstance(self._admin_url, str) else self._admin_url()
        return libpq_url(url)

    def name_for(self, environment: str) -> str:
        return _fit(f"{self.prefix}-{environment}", digest_of=environment)

    def address(self, environment: str) -> DatabaseAddress:
        parts = urlsplit(self.admin_url)
        name = self.name_for(environment)
        password = hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()
        return DatabaseAddress(parts.hostname or "127.0.0.1", parts.port or 5432, name, name,
                               password)  # fmt: skip

    def ensure(self, environment: str) -> DatabaseAddress:
        """Create the environment's role and database if missing (safe to call again)."""
        address = self.address(environment)
        role, database = sql.Identifier(address.user), sql.Identifier(address.database)
        with self._admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (address.user,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                ).format(role, sql.Literal(address.password))
            )
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (address.database,)
            ).fetchone():
                # Another replica may make it at the same moment.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                        database, role))  # fmt: skip
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
            conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(database, role))
        return address

    # --- templates (environments.airflow.runtime.templates) ------------------------------

    def template_name(self, key: str) -> str:
        """The template database for `key` (a virtualenv's name); also its role's name."""
        name = f"{self.prefix}-template-{key}"
        return _fit(name, digest_of=name)

    def build_template(self, name: str, fill: Callable[[DatabaseAddress], bool]) -> bool:
        """Make the template database `name` unless it exists; True when it exists after.

        It belongs to the admin; what `fill` creates in it (given the address of the database
        under construction, as a role named like the template that may log in only meanwhile)
        belongs to that role. Afterwards nobody may connect to it again: it can only be
        copied. One builder at a time, across replicas (an advisory lock)."""
        with self._admin() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
            try:
                if self._is_template(conn, name):
                    return True
                address = self._start_template(conn, name)
                try:
                    filled = fill(address)
                finally:
                    role = sql.Identifier(name)
                    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(role))
                    self._end_sessions(conn, address.database)
                if not filled:
                    self._drop_database(conn, address.database)
                    return False
                built = sql.Identifier(address.database)
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(built, role))
                closed = "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                conn.execute(sql.SQL(closed).format(role))
                return True
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    def _start_template(self, conn: psycopg.Connection, name: str) -> DatabaseAddress:
        """An empty database to build template `name` in, and its builder's one-off login."""
        building = _fit(f"{name}-new", digest_of=f"{name}-new")
        self._drop_database(conn, building)  # left by a builder that died
        role, target = sql.Identifier(name), sql.Identifier(building)
        password = secrets.token_hex(24)
        found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        conn.execute(
            sql.SQL(("ALTER" if found else "CREATE") + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB "
                    "NOCREATEROLE PASSWORD {}").format(role, sql.Literal(password))
        )  # fmt: skip
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8'").format(target))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(target, role))
        with self._admin(building) as inside:
            inside.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(role))
        parts = urlsplit(self.admin_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 5432
        return DatabaseAddress(host, port, building, name, password)

    def drop_template(self, name: str) -> None:
        """Remove a template database and its role; gone is no error."""
        with self._admin() as conn:
            if self._is_template(conn, name):
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(
                    sql.Identifier(name)))  # fmt: skip
            self._drop_database(conn, name)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def is_empty(self, environment: str) -> bool:
        """Whether the environment's database holds no table (a fresh one)."""
        with self._admin(self.name_for(environment)) as inside:
            tables = inside.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone()[0]
        return tables == 0

    def clone(self, environment: str, template: str) -> DatabaseAddress:
        """Replace the environment's database (the caller knows it is empty: see `is_empty`)
        by a copy of `template`, whose objects become the environment's role's."""
        address = self.ensure(environment)
        name, role = sql.Identifier(address.database), sql.Identifier(address.user)
        with self._admin() as conn:
            self._drop_database(conn, address.database)
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {} ENCODING 'UTF8'").format(
                name, sql.Identifier(template), role))  # fmt: skip
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
            conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(name, role))
        with self._admin(address.database) as inside:
            builder = sql.Identifier(template)
            inside.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(builder, role))
            inside.execute(sql.SQL("DROP OWNED BY {}").format(builder))  # its grants here
        return address

    @staticmethod
    def _is_template(conn: psycopg.Connection, name: str) -> bool:
        return bool(conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", (name,)
        ).fetchone())  # fmt: skip

    @staticmethod
    def _end_sessions(conn: psycopg.Connection, name: str) -> None:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )

    def _drop_database(self, conn: psycopg.Connection, name: str) -> None:
        self._end_sessions(conn, name)
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))

    def exists(self, environment: str) -> bool:
        with self._admin() as conn:
            return bool(conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.name_for(environment),)
            ).fetchone())  # fmt: skip

    def drop(self, environment: str) -> None:
        """Drop the database (after ending its sessions) and the role; gone is no error."""
        name = self.name_for(environment)
        with self._admin() as conn:
            # No new sessions, then end the ones there are: a component still running (or
            # starting) cannot hold the database open against the drop.
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
                        sql.Identifier(name)
                    )
                )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def _admin(self, database: str | None = None) -> psycopg.Connection:
        extra = {"dbname": database} if database else {}
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10, **extra)
