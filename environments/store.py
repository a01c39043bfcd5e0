"""Durable state: SQLAlchemy 2 over SQLite (default) or PostgreSQL.

Functions here take a Session and never commit; `Store.transaction()` owns the transaction.
Every change to an environment row is a compare-and-set on `row_version`, so two writers that
read the same row cannot both win. Reconciler leases are separate columns so that claiming
work never conflicts with a user's write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    Float,
    Integer,
    String,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from environments.errors import ConcurrentModification, ServiceUnavailableException
from environments.lifecycle import TRANSITIONAL, Event, Status, next_status
from environments.plumbing.locks import LockTimeout
from environments.plumbing.read_cache import ReadCache

log = logging.getLogger(__name__)

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class EnvironmentRow(Base):
    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1224))
    env_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The last configuration that converged; what a failed update rolls back to.
    applied_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    last_update: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What provisioning produced (log group ARNs, queue ARN, hostnames...), by step.
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    # Steps finished for `generation`, so a restarted reconciler resumes instead of redoing.
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[float] = mapped_column(Float, default=0.0)
    row_version: Mapped[int] = mapped_column(Integer, default=1)


class TokenRow(Base):
    """A short-lived CLI or web-login token; only its hash is kept."""

    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    env_name: Mapped[str] = mapped_column(String(80), index=True)
    identity: Mapped[str] = mapped_column(String(2048))
    airflow_role: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[float] = mapped_column(Float)


class MetaRow(Base):
    """Small server-wide values shared by every replica (e.g. the pagination-token key)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(4096))


class LockRow(Base):
    """A named lock shared by every thread, process and replica on this store: held by
    `owner` until released or until `expires_at`, so a holder that died frees it in time."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Float)


class AccessKeyRow(Base):
    """A minted access key, shared by every replica. ``sealed`` is an encrypted, authenticated
    record of the whole key (controlplane.keystore opens it); the plain columns only serve
    listing and pruning, and are checked against the sealed record when it is opened."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    role: Mapped[str | None] = mapped_column(String(128), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    sealed: Mapped[str] = mapped_column(String(8192))


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL lets readers run beside the single writer; NORMAL sync is durable across
        # process crashes (SIGKILL), which is what a restart-and-resume relies on.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"json_deserializer": _json_loads}
        if is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine = create_engine(url, **kwargs)
        if is_sqlite:
            _tune_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reads = ReadCache.for_engine(self.engine)

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as err:
            raise _unavailable(err) from err

    def dispose(self) -> None:
        if self._reads is not None:
            self._reads.close()
        self.engine.dispose()

    @contextlib.contextmanager
    def exclusive(self, name: str, *, ttl: float = 120.0, timeout: float = 60.0) -> Iterator[None]:
        """Hold the lock `name` (see LockRow) for the body; LockTimeout if it stays taken for
        `timeout` seconds. The body must finish well within `ttl`."""
        owner = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + timeout
        pause = 0.005
        while not self.take_lock(name, owner, ttl):
            if time.monotonic() > deadline:
                raise LockTimeout(f"lock {name!r} is still taken after {timeout:g} s")
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            with self.transaction() as session:
                release_lock(session, name, owner)

    def take_lock(self, name: str, owner: str, ttl: float) -> bool:
        """One try at the lock `name` for `owner`, held for `ttl` seconds (no waiting)."""
        try:
            with self.transaction() as session:
                return try_lock(session, name, owner, time.time(), ttl)
        except IntegrityError:
            return False  # another taker inserted the row first

    def read_environment(self, name: str) -> Any | None:
        """A read-only snapshot of one row (attribute access like EnvironmentRow).

        The hot read path (GetEnvironment, tokens) goes through Core rather than the ORM: it
        needs no identity map or change tracking, and skipping them halves its cost. On SQLite
        a row read before is answered from environments.plumbing.read_cache until the next
        commit. Callers share the row and must not change it.
        """

        def load(conn: Connection) -> Any | None:
            return conn.execute(_SELECT_ONE, {"name": name}).first()

        return self._read(("environment", name), load)

    def read_names(self, after: str | None, limit: int) -> list[str]:
        """Environment names in order, after `after`: the ListEnvironments read, through Core
        with prepared statements like read_environment (no session, no ORM)."""
        statement, params = (
            (_SELECT_NAMES, {"limit": limit})
            if after is None
            else (_SELECT_NAMES_AFTER, {"after": after, "limit": limit})
        )

        def load(conn: Connection) -> tuple[str, ...]:
            return tuple(conn.execute(statement, params).scalars())

        return list(self._read(("names", after, limit), load))

    def _read(self, key: tuple[Any, ...], load: Callable[[Connection], T]) -> T:
        """`load` on a connection: from the read cache on SQLite, else on a pooled one."""
        try:
            if self._reads is not None:
                return self._reads.read(key, load)
            with self.engine.connect() as conn:
                return load(conn)
        except OperationalError as err:
            raise _unavailable(err) from err


def _json_loads(text: str | bytes) -> Any:
    """JSON columns, decoded on every read: orjson, or the standard library for what orjson
    refuses (integers beyond 64 bits, which the standard library wrote)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _unavailable(err: OperationalError) -> ServiceUnavailableException:
    # The database is unreachable, locked past its timeout or out of connections: the request
    # changed nothing and can be retried, which is what MWAA's 503 tells a client.
    log.warning("the store is unavailable: %s", err.orig)
    return ServiceUnavailableException("The environment store is unavailable; try again.")


_SELECT_ONE = select(*EnvironmentRow.__table__.c).where(
    EnvironmentRow.__table__.c.name == bindparam("name")
)
_SELECT_NAMES = (
    select(EnvironmentRow.__table__.c.name)
    .order_by(EnvironmentRow.__table__.c.name)
    .limit(bindparam("limit"))
)
_SELECT_NAMES_AFTER = _SELECT_NAMES.where(EnvironmentRow.__table__.c.name > bindparam("after"))

# --- environments -------------------------------------------------------------------------


def get_environment(session: Session, name: str) -> EnvironmentRow | None:
    return session.get(EnvironmentRow, name)


def count_environments(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(EnvironmentRow)) or 0


def list_names(session: Session, after: str | None, limit: int) -> list[str]:
    query = select(EnvironmentRow.name).order_by(EnvironmentRow.name).limit(limit)
    if after is not None:
        query = query.where(EnvironmentRow.name > after)
    return list(session.scalars(query))


def compare_and_set(session: Session, name: str, expected_version: int, **values: Any) -> None:
    """Write `values` only if nobody changed the row since it was read at `expected_version`."""
    result = session.execute(
        update(EnvironmentRow)
        .where(EnvironmentRow.name == name, EnvironmentRow.row_version == expected_version)
        .values(row_version=EnvironmentRow.row_version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentModification(name)


def next_generation(row: EnvironmentRow) -> dict[str, Any]:
    """The values that hand the reconciler a new generation of `row`: it starts again from the
    first step, with a full retry budget and no backoff."""
    return {"generation": row.generation + 1, "progress": {}, "attempts": 0, "next_attempt_at": 0.0}


def delete_environment(session: Session, name: str, expected_version: int) -> None:
    result = session.execute(
        delete(EnvironmentRow)
        .where(EnvironmentRow.name == name, EnvironmentRow.row_version == expected_version)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentModification(name)
    session.execute(delete(TokenRow).where(TokenRow.env_name == name))


def claimable_names(session: Session, now: float, limit: int) -> list[str]:
    """Environments with work to do whose lease is free and whose backoff has passed."""
    query = (
        select(EnvironmentRow.name)
        .where(
            or_(
                EnvironmentRow.status.in_([s.value for s in TRANSITIONAL]),
                EnvironmentRow.generation > EnvironmentRow.observed_generation,
            ),
            or_(EnvironmentRow.lease_owner.is_(None), EnvironmentRow.lease_expires < now),
            EnvironmentRow.next_attempt_at <= now,
        )
        .order_by(EnvironmentRow.next_attempt_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def try_lease(session: Session, name: str, owner: str, now: float, ttl: float) -> bool:
    result = session.execute(
        update(EnvironmentRow)
        .where(
            EnvironmentRow.name == name,
            or_(
                EnvironmentRow.lease_owner.is_(None),
                EnvironmentRow.lease_expires < now,
                EnvironmentRow.lease_owner == owner,
            ),
        )
        .values(lease_owner=owner, lease_expires=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def renew_lease(session: Session, name: str, owner: str, now: float, ttl: float) -> bool:
    result = session.execute(
        update(EnvironmentRow)
        .where(EnvironmentRow.name == name, EnvironmentRow.lease_owner == owner)
        .values(lease_expires=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_lease(session: Session, name: str, owner: str) -> None:
    session.execute(
        update(EnvironmentRow)
        .where(EnvironmentRow.name == name, EnvironmentRow.lease_owner == owner)
        .values(lease_owner=None, lease_expires=0.0)
        .execution_options(synchronize_session=False)
    )


def follow_health(session: Session, name: str, healthy: bool, now: float) -> str | None:
    """AVAILABLE <-> UNAVAILABLE as the runtime's health says, unless a reconciler holds the
    environment (its own work decides the status then). Returns the new status, if any."""
    event = Event.HEALTHY if healthy else Event.UNHEALTHY
    source = Status.UNAVAILABLE if healthy else Status.AVAILABLE
    target = next_status(source, event)
    result = session.execute(
        update(EnvironmentRow)
        .where(
            EnvironmentRow.name == name,
            EnvironmentRow.status == source.value,
            or_(EnvironmentRow.lease_owner.is_(None), EnvironmentRow.lease_expires < now),
        )
        .values(status=target.value, row_version=EnvironmentRow.row_version + 1)
        .execution_options(synchronize_session=False)
    )
    return target.value if result.rowcount == 1 else None


def release_leases_of(session: Session, owner: str) -> int:
    """Free every lease `owner` holds, for a replica that restarts: its leases are those of
    its dead predecessor. Returns how many were freed."""
    result = session.execute(
        update(EnvironmentRow)
        .where(EnvironmentRow.lease_owner == owner)
        .values(lease_owner=None, lease_expires=0.0)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- tokens and meta ----------------------------------------------------------------------


def add_token(session: Session, token: TokenRow) -> None:
    session.execute(delete(TokenRow).where(TokenRow.expires_at < time.time()))
    session.add(token)


def get_token(session: Session, token_hash: str) -> TokenRow | None:
    return session.get(TokenRow, token_hash)


def take_token(session: Session, token_hash: str) -> TokenRow | None:
    """The token, removed so that it cannot be used again. Of two concurrent takers only the
    one whose delete removed the row gets it."""
    row = session.get(TokenRow, token_hash)
    if row is None:
        return None
    taken = session.execute(
        delete(TokenRow)
        .where(TokenRow.token_hash == token_hash)
        .execution_options(synchronize_session=False)
    )
    return row if taken.rowcount == 1 else None


def environment_addresses(session: Session) -> list[tuple[str, str, str]]:
    """(name, env_id, status) of every environment: where the web doors route."""
    query = select(EnvironmentRow.name, EnvironmentRow.env_id, EnvironmentRow.status)
    return [(name, env_id, status) for name, env_id, status in session.execute(query)]


def get_or_create_meta(session: Session, key: str, make: Any) -> str:
    row = session.get(MetaRow, key)
    if row is None:
        row = MetaRow(key=key, value=make())
        session.add(row)
        session.flush()
    return row.value


def set_meta(session: Session, key: str, value: str) -> None:
    session.merge(MetaRow(key=key, value=value))


def get_meta(session: Session, key: str) -> str | None:
    row = session.get(MetaRow, key)
    return row.value if row is not None else None


def reconciler_write(
    session: Session, name: str, owner: str, at_generation: int, **values: Any
) -> None:
    """A write by the lease holder for the generation it is working on.

    It bumps row_version so that a user's compare-and-set that read before it will notice.
    """
    result = session.execute(
        update(EnvironmentRow)
        .where(
            EnvironmentRow.name == name,
            EnvironmentRow.lease_owner == owner,
            EnvironmentRow.generation == at_generation,
        )
        .values(row_version=EnvironmentRow.row_version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentModification(name)


def reconciler_delete(session: Session, name: str, owner: str, generation: int) -> None:
    result = session.execute(
        delete(EnvironmentRow)
        .where(
            EnvironmentRow.name == name,
            EnvironmentRow.lease_owner == owner,
            EnvironmentRow.generation == generation,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentModification(name)
    session.execute(delete(TokenRow).where(TokenRow.env_name == name))


def rows_in(session: Session, statuses: list[str]) -> list[EnvironmentRow]:
    """Every environment in one of `statuses`, whole."""
    return list(session.scalars(select(EnvironmentRow).where(EnvironmentRow.status.in_(statuses))))


def environments_in(session: Session, statuses: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of every environment in one of `statuses`."""
    query = select(EnvironmentRow.name, EnvironmentRow.spec).where(
        EnvironmentRow.status.in_(statuses)
    )
    return [(name, spec) for name, spec in session.execute(query)]


# --- named locks --------------------------------------------------------------------------


def try_lock(session: Session, name: str, owner: str, now: float, ttl: float) -> bool:
    """Take the lock `name` if it is free, expired or already `owner`'s. When two take a free
    lock at once, one insert wins and the other fails on the primary key (IntegrityError)."""
    taken = session.execute(
        update(LockRow)
        .where(LockRow.name == name, or_(LockRow.expires_at < now, LockRow.owner == owner))
        .values(owner=owner, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:
        return True
    if session.scalar(select(func.count()).where(LockRow.name == name)):
        return False
    session.execute(insert(LockRow).values(name=name, owner=owner, expires_at=now + ttl))
    return True


def release_lock(session: Session, name: str, owner: str) -> None:
    session.execute(
        delete(LockRow)
        .where(LockRow.name == name, LockRow.owner == owner)
        .execution_options(synchronize_session=False)
    )
