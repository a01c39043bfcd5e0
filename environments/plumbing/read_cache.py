"""Reads a process has made, kept while SQLite reports no commit since.

GetEnvironment and ListEnvironments are the calls that clients, waiters and consoles poll.
Through SQLAlchemy Core, GetEnvironment's one-row read cost an API worker about as much CPU
as the signature check, the policy decision and the JSON together. SQLite offers a cheap way not to
read again: `PRAGMA data_version` on a connection changes whenever any other connection, in
any process, commits to the database. So `ReadCache` reads on a connection of its own that
never writes, and answers from what it has read for as long as that number stays the same.
A commit anywhere, to any table, empties it.

A cached answer is exactly as fresh as a read: a read that starts after a write's commit sees
a new data_version, so read-your-writes holds across threads and processes (API workers, the
background process, other replicas on the same file). PostgreSQL has no such counter; the
store reads every time there (`ReadCache.for_engine` gives None).

What a load returns is shared by every caller until the next commit: loads return immutable
values (rows, tuples), and callers must not change the dicts inside a row (they never have;
`Store.read_environment` has always promised a read-only snapshot). A load must also consume
or close every result it opens: an open statement holds its read snapshot, and data_version
with it. An answer of None (nothing found) is not kept, so keys that name nothing, which a
caller may make up at will, never fill the cache: it holds at most one answer per thing that
exists.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import SingletonThreadPool, StaticPool

T = TypeVar("T")

# Answers a process keeps at most; past it the cache starts over (one read each).
MAX_ENTRIES = 4096


class ReadCache:
    def __init__(self, engine: Engine, *, max_entries: int = MAX_ENTRIES):
        self._engine = engine
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pid = 0
        self._version: int | None = None
        self._answers: dict[Hashable, Any] = {}
        # Connections opened before a fork belong to the parent: the child never uses or
        # closes them (closing would drop SQLite's locks and WAL handles the parent holds).
        self._inherited: list[Connection] = []
        _LIVE.add(self)

    @classmethod
    def for_engine(cls, engine: Engine) -> ReadCache | None:
        """A cache for a SQLite file; None for PostgreSQL, and for SQLite in memory or over a
        pool that hands every thread one connection: data_version does not count a
        connection's own commits, nor those of connections sharing its cache."""
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database or ""
        if database in ("", ":memory:") or engine.url.query.get("mode") == "memory":
            return None
        if isinstance(engine.pool, StaticPool | SingletonThreadPool):
            return None
        return cls(engine)

    def read(self, key: Hashable, load: Callable[[Connection], T]) -> T:
        """What `load` would read now; from the cache when `key` was loaded since the last
        commit. `load` runs on the cache's connection and must return an immutable value.
        Raises what `load` raises (sqlalchemy's OperationalError when the store is down)."""
        with self._lock:
            conn = self._connection()
            try:
                version = self._data_version(conn)
                if version != self._version:
                    self._answers.clear()
                    self._version = version
                if key in self._answers:
                    return self._answers[key]
                answer = load(conn)
                conn.rollback()  # end SQLAlchemy's implicit transaction; SQLite has none
                if answer is not None:
                    if len(self._answers) >= self._max_entries:
                        self._answers.clear()
                    self._answers[key] = answer
                return answer
            except Exception:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._leave_inherited()
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._version = None
            self._answers.clear()

    def _after_fork_in_child(self) -> None:
        # The parent's lock may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._leave_inherited()

    def _leave_inherited(self) -> None:
        if self._conn is not None and self._pid != os.getpid():
            self._inherited.append(self._conn)
            self._conn = None
            self._version = None
            self._answers.clear()

    def _connection(self) -> Connection:
        self._leave_inherited()
        if self._conn is None:
            self._conn = self._engine.connect()
            self._pid = os.getpid()
            self._version = None
            self._answers.clear()
        return self._conn

    def _data_version(self, conn: Connection) -> int:
        """The pragma, on the driver's connection: through SQLAlchemy it would cost more than
        the cached answer saves. Driver errors come out as SQLAlchemy's, as a query's would."""
        raw = conn.connection.driver_connection
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            if raw.in_transaction:  # a snapshot would hold data_version still; never expected
                raw.rollback()
            return raw.execute("PRAGMA data_version").fetchone()[0]
        except dbapi.Error as err:
            raise DBAPIError.instance(
                "PRAGMA data_version", None, err, dbapi.Error, dialect=self._engine.dialect
            ) from err

    def _drop(self) -> None:
        """Forget the connection after an error: it goes back to the pool invalidated, so
        neither this cache nor anyone else reuses what may be a broken handle."""
        conn, self._conn = self._conn, None
        self._version = None
        self._answers.clear()
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken; the next read opens anew
                conn.invalidate()
                conn.close()


_LIVE: weakref.WeakSet[ReadCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_LIVE):
        cache._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
