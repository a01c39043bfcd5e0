"""Workers on other hosts, as the control plane counts them: a heartbeat row per worker host.

A remote worker host (`airdock worker NAME`) writes a row into the environment's own
metadata database, the one store both sides reach, every `BEAT_SECONDS`; the control plane
counts the rows fresher than `FRESH_SECONDS`. The rows live in a schema of Airdock's own
(`airdock`), apart from Airflow's tables and migrations.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from environments.airflow.metadb.databases import libpq_url

SCHEMA = "airdock"
TABLE = f"{SCHEMA}.remote_workers"
BEAT_SECONDS = 5.0
FRESH_SECONDS = 60.0  # a dozen missed beats: worker hosts can be busy
READ_EVERY_SECONDS = 5.0

_CREATE = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} (host text PRIMARY KEY, workers integer NOT NULL, "
    "ready integer NOT NULL, concurrency integer NOT NULL, pids text NOT NULL, "
    "beat_at timestamptz NOT NULL DEFAULT now())",
)


def _connect(database_url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(database_url), connect_timeout=3, autocommit=True)


def beat(database_url: str, host: str, *, workers: int, ready: int, concurrency: int,
         pids: list[int]) -> None:  # fmt: skip
    with _connect(database_url) as conn:
        for statement in _CREATE:
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {TABLE} (host, workers, ready, concurrency, pids, beat_at) "
            "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (host) DO UPDATE SET "
            "workers = EXCLUDED.workers, ready = EXCLUDED.ready, "
            "concurrency = EXCLUDED.concurrency, pids = EXCLUDED.pids, beat_at = now()",
            (host, workers, ready, concurrency, ",".join(map(str, pids))),
        )


def leave(database_url: str, host: str) -> None:
    with _connect(database_url) as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE host = %s", (host,))


def fresh(database_url: str) -> list[dict[str, Any]]:
    """The worker hosts heard from within FRESH_SECONDS ([] when there is no table yet)."""
    with _connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()
        if not exists or exists[0] is None:
            return []
        rows = conn.execute(
            f"SELECT host, workers, ready, concurrency, "
            f"extract(epoch FROM now() - beat_at) FROM {TABLE} "
            "WHERE beat_at > now() - make_interval(secs => %s) ORDER BY host",
            (FRESH_SECONDS,),
        ).fetchall()
    return [
        {
            "host": h,
            "workers": w,
            "ready": r,
            "concurrency": c,
            "seen_seconds_ago": round(float(a), 1),
        }
        for h, w, r, c, a in rows
    ]


class RemoteWorkers:
    """The control plane's view, read at most every READ_EVERY_SECONDS per environment."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def of(self, name: str, database_url: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(name)
        if seen is not None and now - seen[0] < READ_EVERY_SECONDS:
            return seen[1]
        try:
            hosts = fresh(database_url)
        except (psycopg.Error, OSError, ValueError):  # unreachable: keep the last answer
            hosts = seen[1] if seen else []
        with self._lock:
            self._seen[name] = (now, hosts)
        return hosts

    def forget(self, name: str) -> None:
        with self._lock:
            self._seen.pop(name, None)
