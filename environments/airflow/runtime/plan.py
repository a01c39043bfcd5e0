"""What to run for one environment, gathered from its spec and provisioned resources.

A plan is plain data. `restart_key` covers everything a running process has read at start,
so a change in it means new processes; the worker count is left out, because it changes
while the environment runs without restarting anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from environments.spec import ENVIRONMENT_CLASSES

# Tasks per worker, by environment class (MWAA's worker sizes).
DEFAULT_CONCURRENCY = 5


@dataclass(frozen=True)
class RuntimePlan:
    name: str
    env_id: str
    airflow_version: str
    environment_class: str
    schedulers: int
    min_workers: int
    max_workers: int
    options: dict[str, str]  # AirflowConfigurationOptions, "section.key" -> value
    logging: dict[str, dict[str, Any]]  # LoggingConfiguration
    execution_role_arn: str
    queue_url: str
    queue_name: str
    region: str
    account_id: str
    aws_endpoint: str | None  # None: AWS's own endpoints
    venv: Path  # the real directory of the environment's current virtualenv
    workspace: Path
    database_url: str
    # Where users reach the web server: https://<its address>, through the web doors.
    web_url: str = ""
    extras: dict[str, str] = field(default_factory=dict)  # hashes of files processes read
    mwaa_endpoint: str | None = None  # Airdock's MWAA API, as the environment's tasks reach it

    @property
    def major(self) -> int:
        return int(self.airflow_version.split(".", 1)[0])

    @property
    def worker_concurrency(self) -> int:
        limits = ENVIRONMENT_CLASSES.get(self.environment_class)
        return limits.tasks_per_worker if limits else DEFAULT_CONCURRENCY

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def restart_key(self) -> str:
        values = asdict(self)
        for scaled in ("min_workers", "max_workers"):
            values.pop(scaled)
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """A short digest of a file's bytes ('' when absent), for `RuntimePlan.extras`."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return ""
