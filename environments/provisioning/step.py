"""The contract every provisioning step keeps.

Both `ensure` and `teardown` are idempotent: they look their resources up by deterministic
name or tag before creating or deleting anything, so the reconciler may run them again after
a crash at any point. They report an Outcome value instead of raising, so temporary and
permanent failures are handled the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from environments.naming import Placement
from environments.workspace import Workspace


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class RetryLater:
    """A transient failure (throttling, 5xx, not-yet-consistent); try again after a backoff."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """A permanent failure, reported in LastUpdate.Error with an MWAA-style code."""

    code: str
    message: str


Outcome = Done | RetryLater | Failed
DONE = Done()

# Every AWS resource Airdock creates carries this tag with the environment ARN as its value:
# it is how steps find their own resources again and how nothing of the user's is touched.
OWNER_TAG = "airdock:environment"


@dataclass(frozen=True)
class StepServices:
    """What the process that runs the steps hands to them."""

    aws: Any  # environments.aws.clients.AwsClients
    data_dir: Path | None = None  # workspaces live under data_dir/environments/
    log_retention_days: int = 30
    dag_events: bool = True  # S3 event notifications for sub-second DAG pickup
    # Build each environment's Airflow virtualenv. Off only for control-plane tests and
    # benchmarks, where installing Airflow for every environment would measure pip, not us.
    airflow_venvs: bool = True
    uv_cache_dir: Path | None = None  # default: data_dir/cache/uv
    # Called with an environment name when its DAGs changed; None parses them right away.
    dags_changed: Callable[[str], None] | None = None

    @property
    def uv_cache(self) -> Path:
        if self.uv_cache_dir is not None:
            return self.uv_cache_dir
        if self.data_dir is None:
            raise RuntimeError("no data dir configured for the package cache")
        return self.data_dir / "cache" / "uv"

    def workspace(self, name: str) -> Workspace:
        if self.data_dir is None:
            raise RuntimeError("no data dir configured for environment workspaces")
        return Workspace.for_environment(self.data_dir, name)


@dataclass
class StepContext:
    """What a step may read, and `resources`, the one thing it may write (its outputs)."""

    name: str
    arn: str
    env_id: str
    spec: dict[str, Any]
    tags: dict[str, str]
    placement: Placement
    resources: dict[str, Any] = field(default_factory=dict)
    # The last configuration that converged (None before the first success).
    applied_spec: dict[str, Any] | None = None
    # Infrastructure handed to steps by the process that runs them (see StepServices).
    services: Any = None


class Step(Protocol):
    name: str

    def ensure(self, ctx: StepContext) -> Outcome: ...

    def teardown(self, ctx: StepContext) -> Outcome: ...
