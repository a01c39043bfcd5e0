"""One PostgreSQL database per environment for Airflow's metadata.

The server is given by URL (an existing PostgreSQL, trust or password auth). Each environment
gets `airflow_<env id>`; delete drops it. This module is the only place that knows where the
server is, so the server the control plane runs itself can take its place.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432"


class MetadataDatabases:
    def __init__(self, server_url: str = DEFAULT_SERVER_URL) -> None:
        parts = urlsplit(server_url)
        self._server = urlunsplit(("postgresql", parts.netloc, "", parts.query, ""))

    @staticmethod
    def database_name(env_id: str) -> str:
        return f"airflow_{env_id}".lower()

    def url_for(self, env_id: str) -> str:
        """The SQLAlchemy URL Airflow uses (its lock files bring psycopg2)."""
        parts = urlsplit(self._server)
        path = "/" + self.database_name(env_id)
        return urlunsplit(("postgresql+psycopg2", parts.netloc, path, parts.query, ""))

    def _admin(self) -> psycopg.Connection:
        parts = urlsplit(self._server)
        url = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
        return psycopg.connect(url, autocommit=True, connect_timeout=10)

    def create(self, env_id: str) -> bool:
        """Create the environment's database unless it exists; True when it was created."""
        name = self.database_name(env_id)
        with self._admin() as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True

    def drop(self, env_id: str) -> None:
        name = self.database_name(env_id)
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
