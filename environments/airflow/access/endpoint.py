"""Where an environment's Airflow API listens, and the secret its users' passwords derive from.

Read from the files the runtime keeps in the environment's workspace (the control plane's API
workers and the background worker that runs Airflow are different processes): `runtime.json`
(its API port and Airflow version, rewritten every second while it runs) and the 0600 secrets
file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from environments.airflow.runtime.identity import SECRET_NAME
from environments.airflow.runtime.manager import SECRETS_FILE, STATUS_FILE
from environments.workspace import Workspace


class NotRunning(Exception):
    """The environment's Airflow is not running (yet), so it has no API to call."""


@dataclass(frozen=True)
class AirflowEndpoint:
    name: str
    base_url: str  # e.g. http://127.0.0.1:41234
    major: int  # Airflow's major version
    access_key: str  # the environment's secret (identity.password_for)

    def __repr__(self) -> str:
        return f"AirflowEndpoint({self.name!r}, {self.base_url!r}, major={self.major})"

    @property
    def api_root(self) -> str:
        """The REST API's root: v2 on 3.x, v1 on 2.x (InvokeRestApi's Path is relative to it)."""
        return "/api/v2" if self.major >= 3 else "/api/v1"

    @property
    def users_root(self) -> str:
        """FAB's user API, served by the FAB provider on both majors."""
        return "/auth/fab/v1/users"

    @property
    def cache_key(self) -> tuple[str, str, str]:
        """Changes when the environment is recreated (new secret) or moves to another port."""
        digest = hashlib.sha256(self.access_key.encode()).hexdigest()[:16]
        return (self.name, self.base_url, digest)


def read_endpoint(data_dir: Path, name: str) -> AirflowEndpoint:
    """The endpoint of `name`'s running Airflow; NotRunning if it has none."""
    workspace = Workspace.for_environment(data_dir, name)
    status = workspace.read_json(STATUS_FILE, None)
    secrets = workspace.read_json(SECRETS_FILE, None)
    if not isinstance(status, dict) or not status.get("api_port") or status.get("status"):
        raise NotRunning(f"the Airflow of {name} is not running")
    if not isinstance(secrets, dict) or not secrets.get(SECRET_NAME):
        raise NotRunning(f"the Airflow of {name} has no users yet")
    version = str(status.get("airflow_version") or "")
    try:
        major = int(version.split(".", 1)[0])
    except ValueError:
        raise NotRunning(f"the Airflow of {name} reports no version") from None
    return AirflowEndpoint(
        name=name,
        base_url=f"http://127.0.0.1:{int(status['api_port'])}",
        major=major,
        access_key=str(secrets[SECRET_NAME]),
    )
