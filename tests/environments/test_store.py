"""The store on SQLite and, when reachable, PostgreSQL: compare-and-set and leases."""

from __future__ import annotations

import threading
import time

import pytest

from environments import store
from environments.errors import (
    ConcurrentModification,
    ServiceUnavailableException,
    ValidationException,
)
from environments.naming import Placement
from environments.service import EnvironmentService
from environments.store import Store
from tests.conftest import create_params

PLACE = Placement(account_id="123456789012", region="us-east-1")


@pytest.fixture
def db(db_url: str):
    made = Store(db_url)
    made.create_schema()
    yield made
    made.dispose()


def test_an_unreachable_database_is_service_unavailable(tmp_path):
    # Reads and transactions alike: the API answers MWAA's 503, which clients retry.
    unreachable = Store(f"sqlite:///{tmp_path / 'no-such-dir' / 'store.db'}")
    with pytest.raises(ServiceUnavailableException) as info:
        unreachable.read_environment("any")
    assert info.value.status == 503
    with pytest.raises(ServiceUnavailableException), unreachable.transaction() as session:
        store.list_names(session, None, 10)
    unreachable.dispose()


def test_compare_and_set_has_one_winner(db):
    service = EnvironmentService(db, PLACE)
    service.create("cas", create_params())
    with db.transaction() as session:
        version = store.get_environment(session, "cas").row_version
    with db.transaction() as session:
        store.compare_and_set(session, "cas", version, status="AVAILABLE")
    with pytest.raises(ConcurrentModification), db.transaction() as session:
        store.compare_and_set(session, "cas", version, status="UPDATING")
    with db.transaction() as session:
        assert store.get_environment(session, "cas").status == "AVAILABLE"


def test_concurrent_updates_cannot_both_win(db):
    service = EnvironmentService(db, PLACE)
    service.create("race", create_params())
    with db.transaction() as session:
        row = store.get_environment(session, "race")
        store.compare_and_set(session, "race", row.row_version, status="AVAILABLE")
    results: list[str] = []
    barrier = threading.Barrier(6)

    def update(workers: int) -> None:
        barrier.wait()
        try:
            service.update("race", {"MaxWorkers": workers})
            results.append(f"won:{workers}")
        except ValidationException as err:
            results.append(f"lost:{err.message}")

    threads = [threading.Thread(target=update, args=(n,)) for n in range(2, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r.startswith("won")]
    assert len(winners) == 1, results
    env = service.get("race")
    assert env["Status"] == "UPDATING"
    assert f"won:{env['MaxWorkers']}" == winners[0]


def test_leases_are_exclusive_until_they_expire(db):
    EnvironmentService(db, PLACE).create("leased", create_params())
    now = time.time()
    with db.transaction() as session:
        assert store.try_lease(session, "leased", "a", now, ttl=10)
    with db.transaction() as session:
        assert not store.try_lease(session, "leased", "b", now, ttl=10)
        assert store.claimable_names(session, now, 10) == []
    with db.transaction() as session:
        assert store.try_lease(session, "leased", "b", now + 11, ttl=10)
    with db.transaction() as session:
        assert not store.renew_lease(session, "leased", "a", now + 11, ttl=10)


def test_names_are_listed_in_order_after_a_cursor(db):
    service = EnvironmentService(db, PLACE)
    for name in ("c", "a", "b", "d"):
        service.create(name, create_params())
    with db.transaction() as session:
        assert store.list_names(session, None, 2) == ["a", "b"]
        assert store.list_names(session, "b", 5) == ["c", "d"]
    # The read the API's ListEnvironments uses: the same answers without a session.
    assert db.read_names(None, 2) == ["a", "b"]
    assert db.read_names("b", 5) == ["c", "d"]
    assert db.read_names("d", 5) == []


def test_json_columns_round_trip_integers_beyond_64_bits(db):
    service = EnvironmentService(db, PLACE)
    service.create("big", create_params(Tags={"n": "1"}))
    with db.transaction() as session:
        row = store.get_environment(session, "big")
        row.resources = {"huge": 2**70}
    assert db.read_environment("big").resources == {"huge": 2**70}


def test_replicas_share_the_pagination_key(db):
    first = EnvironmentService(db, PLACE)
    for name in ("p1", "p2", "p3"):
        first.create(name, create_params())
    names, token = first.list(1, None)
    second = EnvironmentService(db, PLACE)
    more, _ = second.list(2, token)
    assert names == ["p1"] and more == ["p2", "p3"]
