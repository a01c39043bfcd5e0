"""The read cache: answers kept until a commit anywhere, never a stale one.

Real SQLite files, real second connections, a real second process and a real fork.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool, StaticPool

from environments.errors import ServiceUnavailableException
from environments.naming import Placement
from environments.plumbing.read_cache import ReadCache
from environments.service import EnvironmentService
from environments.store import Store
from tests.conftest import create_params

PLACE = Placement(account_id="123456789012", region="us-east-1")


@pytest.fixture
def path(tmp_path):
    file = tmp_path / "cache.db"
    with sqlite3.connect(file) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO kv VALUES ('a', 'one')")
    return file


@pytest.fixture
def cache(path):
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    made = ReadCache.for_engine(engine)
    assert made is not None
    yield made
    made.close()
    engine.dispose()


class Loads:
    """A load of `kv`, counting how often the database was really read."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, key: str):
        def load(conn: Connection):
            self.count += 1
            return conn.execute(text("SELECT v FROM kv WHERE k = :k"), {"k": key}).scalar()

        return load


def write(path, key: str, value: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))


def test_a_second_read_without_a_commit_is_answered_from_the_cache(cache):
    loads = Loads()
    assert cache.read("a", loads("a")) == "one"
    assert cache.read("a", loads("a")) == "one"
    assert loads.count == 1


def test_names_of_nothing_are_read_each_time_and_never_fill_the_cache(path):
    engine = create_engine(f"sqlite:///{path}")
    cache = ReadCache(engine, max_entries=2)
    loads = Loads()
    cache.read("a", loads("a"))
    for made_up in range(50):  # a caller may name anything: none of it is kept
        assert cache.read(f"nothing-{made_up}", loads(f"nothing-{made_up}")) is None
    cache.read("a", loads("a"))
    assert loads.count == 51  # "a" was read once
    cache.close()
    engine.dispose()


def test_a_commit_on_another_connection_is_seen_by_the_next_read(cache, path):
    loads = Loads()
    for round_ in range(50):
        write(path, "a", f"v{round_}")
        write(path, "b", f"w{round_}")  # a key absent at first appears as soon as committed
        assert cache.read("a", loads("a")) == f"v{round_}"
        assert cache.read("b", loads("b")) == f"w{round_}"
    assert loads.count == 100


def test_a_commit_to_another_table_empties_the_cache_too(cache, path):
    loads = Loads()
    cache.read("a", loads("a"))
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS other (x)")
        conn.execute("INSERT INTO other VALUES (1)")
    cache.read("a", loads("a"))
    assert loads.count == 2


def test_a_commit_in_another_process_is_seen_by_the_next_read(cache, path):
    loads = Loads()
    assert cache.read("a", loads("a")) == "one"
    script = (
        "import sqlite3, sys\n"
        "with sqlite3.connect(sys.argv[1]) as c:\n"
        "    c.execute(\"UPDATE kv SET v = 'from-elsewhere' WHERE k = 'a'\")\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    assert cache.read("a", loads("a")) == "from-elsewhere"


def test_an_uncommitted_write_elsewhere_is_not_read_and_its_commit_is(cache, path):
    loads = Loads()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE kv SET v = 'pending' WHERE k = 'a'")
    assert cache.read("a", loads("a")) == "one"
    writer.execute("COMMIT")
    writer.close()
    assert cache.read("a", loads("a")) == "pending"


def which_connection(conn: Connection) -> int:
    return id(conn.connection.driver_connection)


def test_a_forked_child_reads_on_its_own_connection_and_leaves_the_parents(cache, path):
    loads = Loads()
    assert cache.read("a", loads("a")) == "one"
    parents = cache.read("which", which_connection)
    write(path, "a", "before-fork")
    pid = os.fork()
    if pid == 0:  # the child: fresh answers, and it must not use or close the parent's connection
        try:
            fresh = cache.read("a", loads("a")) == "before-fork"
            own = cache.read("which", which_connection) != parents
            cache.close()
            os._exit(0 if fresh and own else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    write(path, "a", "after-child")
    assert cache.read("a", loads("a")) == "after-child"  # the parent's connection still works
    assert cache.read("which", which_connection) == parents


def open_files(path) -> int:
    """How many of this process's descriptors are open on the database or its WAL."""
    names = {str(path), f"{path}-wal"}
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") in names
    return count


def test_a_child_that_closes_the_cache_never_gets_the_parents_connection(path):
    engine = create_engine(f"sqlite:///{path}")
    cache = ReadCache(engine)
    cache.read("a", Loads()("a"))
    parents = cache.read("which", which_connection)
    pid = os.fork()
    if pid == 0:  # dropped rather than kept, it would go back to the pool for anyone here
        try:
            gc.collect()  # connections of this test's other steps, left for collection
            before = open_files(path)
            cache.close()
            gc.collect()
            with engine.connect() as conn:
                fresh = which_connection(conn) != parents
            os._exit(0 if fresh and before and open_files(path) >= before else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.read("which", which_connection) == parents
    cache.close()
    engine.dispose()


def test_a_child_forked_while_a_thread_reads_does_not_wait_for_that_thread(cache, path):
    inside, release = threading.Event(), threading.Event()

    def slow(conn: Connection):
        inside.set()
        release.wait(30)
        return "slow"

    reader = threading.Thread(target=cache.read, args=("slow", slow))
    reader.start()
    assert inside.wait(30)
    pid = os.fork()  # the reading thread holds the cache; it does not exist in the child
    if pid == 0:
        try:
            signal.alarm(20)  # a child stuck on the parent's lock dies of SIGALRM
            os._exit(0 if cache.read("a", Loads()("a")) == "one" else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    release.set()
    reader.join(timeout=30)
    assert os.waitstatus_to_exitcode(status) == 0


def test_many_threads_read_and_never_see_a_value_older_than_the_last_commit(cache, path):
    committed = {"value": 0}
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        loads = Loads()
        while not stop.is_set():
            floor = committed["value"]  # committed before this read started
            got = int(cache.read("a", loads("a")))
            if got < floor:
                errors.append(f"read {got} after {floor} was committed")

    write(path, "a", "0")
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for value in range(1, 200):
        write(path, "a", str(value))
        committed["value"] = value
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []


def test_past_its_bound_the_cache_starts_over(path):
    for key in "bcd":
        write(path, key, key)
    engine = create_engine(f"sqlite:///{path}")
    cache = ReadCache(engine, max_entries=3)
    loads = Loads()
    for key in "abcd":  # the fourth answer clears the first three
        cache.read(key, loads(key))
    cache.read("d", loads("d"))
    cache.read("a", loads("a"))
    assert loads.count == 5
    cache.close()
    engine.dispose()


def test_a_driver_error_in_the_commit_check_is_sqlalchemys_and_the_next_read_recovers(cache):
    # What the store maps to MWAA's 503 is SQLAlchemy's OperationalError; the pragma runs on
    # the driver's connection, whose errors must come out the same way.
    raw = cache.read("raw", lambda conn: conn.connection.driver_connection)
    raw.set_progress_handler(lambda: 1, 1)  # every statement on it is interrupted
    with pytest.raises(OperationalError):
        cache.read("a", Loads()("a"))
    assert cache.read("a", Loads()("a")) == "one"
    assert cache.read("raw", lambda conn: conn.connection.driver_connection) is not raw


def test_a_failed_load_drops_the_connection_and_the_next_read_recovers(cache):
    def broken(conn: Connection):
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))

    with pytest.raises(OperationalError):
        cache.read("a", broken)
    assert cache.read("a", Loads()("a")) == "one"


def test_no_cache_without_a_commit_counter():
    # PostgreSQL has no data_version; an in-memory SQLite's connections may share one database
    # connection, whose own commits data_version does not count.
    assert ReadCache.for_engine(create_engine("postgresql+psycopg://u@127.0.0.1/x")) is None
    assert ReadCache.for_engine(create_engine("sqlite://")) is None
    assert ReadCache.for_engine(create_engine("sqlite:///:memory:")) is None
    memory_uri = "sqlite:///file:shared?mode=memory&cache=shared&uri=true"
    assert ReadCache.for_engine(create_engine(memory_uri, poolclass=QueuePool)) is None
    one_connection = create_engine("sqlite:////tmp/any.db", poolclass=StaticPool)
    assert ReadCache.for_engine(one_connection) is None


# --- through the store ----------------------------------------------------------------------


def test_two_stores_on_one_file_read_each_others_writes_at_once(tmp_path):
    # Two API workers in miniature: each write through one is read at once through the other.
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first, second = Store(url), Store(url)
    first.create_schema()
    service = EnvironmentService(first, PLACE)
    other = EnvironmentService(second, PLACE)
    service.create("shared", create_params())
    assert other.get("shared")["Name"] == "shared"
    for round_ in range(30):
        writer, reader = (service, other) if round_ % 2 else (other, service)
        arn = PLACE.environment_arn("shared")
        writer.tag(arn, {"Tags": {"round": str(round_)}})
        assert reader.get("shared")["Tags"]["round"] == str(round_)
        assert reader.list_tags(arn)["round"] == str(round_)
    other.create("second", create_params())
    assert service.list(None, None)[0] == ["second", "shared"]
    assert service.get("second")["Name"] == "second"
    first.dispose()
    second.dispose()


def test_listing_pages_are_fresh_and_callers_get_their_own_list(tmp_path):
    db = Store(f"sqlite:///{tmp_path / 'store.db'}")
    db.create_schema()
    service = EnvironmentService(db, PLACE)
    service.create("b", create_params())
    names = db.read_names(None, 10)
    names.append("mine")  # a caller's list is its own
    assert db.read_names(None, 10) == ["b"]
    service.create("a", create_params())
    assert db.read_names(None, 10) == ["a", "b"]
    db.dispose()


def test_a_store_that_becomes_unreachable_answers_503_and_recovers(tmp_path):
    path = tmp_path / "store.db"
    db = Store(f"sqlite:///{path}")
    db.create_schema()
    EnvironmentService(db, PLACE).create("e", create_params())
    assert db.read_environment("e") is not None
    broken_dir = tmp_path / "gone"
    path.rename(tmp_path / "moved.db")
    broken_dir.mkdir()
    path.mkdir()  # the path is now a directory: SQLite cannot open or read it
    db.dispose()  # drop open connections, which would still reach the moved file
    with pytest.raises(ServiceUnavailableException):
        db.read_environment("e")
    path.rmdir()
    (tmp_path / "moved.db").rename(path)
    assert db.read_environment("e").name == "e"
    db.dispose()
