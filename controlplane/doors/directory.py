"""Which environment answers at which loopback address, and where its Airflow listens.

Rebuilt from the store (names, ids, statuses) and from each environment's runtime status file
(the web server's port and the Airflow version), which the background worker keeps current.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from environments import store
from environments.airflow.runtime.manager import STATUS_FILE
from environments.naming import webserver_address
from environments.store import Store
from environments.workspace import Workspace


@dataclass(frozen=True)
class Door:
    name: str
    address: str
    status: str
    api_port: int | None  # None: no Airflow web server runs for it
    airflow_version: str | None

    @property
    def upstream(self) -> str | None:
        return f"http://127.0.0.1:{self.api_port}" if self.api_port else None


class DoorDirectory:
    def __init__(self, data_dir: Path, db: Store) -> None:
        self._data_dir = data_dir
        self._db = db
        self.doors: dict[str, Door] = {}

    def workspace(self, door: Door) -> Workspace:
        return Workspace.for_environment(self._data_dir, door.name)

    def refresh(self) -> dict[str, Door]:
        with self._db.transaction() as session:
            rows = store.environment_addresses(session)
        doors = {}
        for name, env_id, status in rows:
            runtime = Workspace.for_environment(self._data_dir, name).read_json(STATUS_FILE, {})
            running = runtime.get("status") != "stopped" and runtime.get("api_port")
            address = webserver_address(env_id)
            doors[address] = Door(
                name=name,
                address=address,
                status=status,
                api_port=int(runtime["api_port"]) if running else None,
                airflow_version=runtime.get("airflow_version"),
            )
        self.doors = doors
        return doors
