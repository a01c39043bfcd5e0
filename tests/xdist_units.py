"""How `./scripts/test` shares the suite between its pytest-xdist workers.

A worker takes one unit at a time, in collection order. A unit is a whole module, so module
fixtures start once, except that every test on the session's Airflow server (`airflow_live`)
joins one unit, "airflow-live", so that server and its environments start once and on one
worker. Units go longest first: that one, then the slow modules (most start an Airflow of
their own), then the rest, so short modules fill the end of the run instead of a long one
trailing.

Only the workers see fixtures and marks, and only the controller schedules: each worker writes
the unit of every test it collected to a file that the controller names in UNITS_FILE_ENV, and
the controller's scheduler reads it once collection is over. (xdist's own `xdist_group` mark
cannot carry this: with pytest 9 its rewritten node ids no longer reach the scheduler.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

UNITS_FILE_ENV = "AIRDOCK_TEST_UNITS_FILE"
AIRFLOW_LIVE_UNIT = "airflow-live"


def uses_airflow_live(item: pytest.Item | None) -> bool:
    return item is not None and "airflow_live" in getattr(item, "fixturenames", ())


def rank(item: pytest.Item) -> int:
    if uses_airflow_live(item):
        return 0
    return 1 if item.get_closest_marker("slow") else 2


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def unit_of(item: pytest.Item) -> str:
    return AIRFLOW_LIVE_UNIT if uses_airflow_live(item) else module_of(item.nodeid)


def order_and_record(items: list[pytest.Item]) -> None:
    """Sort `items` into run order and, in an xdist worker, record each one's unit."""
    items.sort(key=rank)  # stable: each rank keeps the collection order
    target = os.environ.get(UNITS_FILE_ENV)
    if not target or not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    # Every worker collects the same tests, so each writes the same map; replace, never append.
    path = Path(target)
    partial = path.with_name(f"{path.name}.{os.environ['PYTEST_XDIST_WORKER']}")
    partial.write_text(json.dumps({item.nodeid: unit_of(item) for item in items}))
    os.replace(partial, path)


def make_scheduler(config: pytest.Config, log: object) -> object:
    """The controller's scheduler: xdist's scope scheduling, with our units as the scopes."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.units is None:
                # Strict: a map the workers did not write would split the shared server's tests
                # across workers without a word, each starting that server.
                self.units = json.loads(Path(os.environ[UNITS_FILE_ENV]).read_text())
            return self.units[nodeid]

    return UnitScheduling(config, log)
