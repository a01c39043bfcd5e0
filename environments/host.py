"""What this host gives everything that works on environments: AWS clients, the data dir where
workspaces live, the shared package cache, and a few switches.

The reconciler's steps, the DAG sync service, the DAG reporter and the CLI's local commands all
receive one `HostServices`; none of them builds clients or paths of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from environments.aws.clients import AwsClients
from environments.workspace import Workspace


class MetadataDatabases(Protocol):
    """Each environment's Airflow metadata database (environments.airflow.metadb.databases)."""

    def ensure(self, environment: str) -> Any: ...

    def address(self, environment: str) -> Any: ...

    def drop(self, environment: str) -> None: ...


@dataclass(frozen=True)
class HostServices:
    aws: AwsClients
    data_dir: Path | None = None  # workspaces live under data_dir/environments/
    log_retention_days: int = 30
    dag_events: bool = True  # S3 event notifications for sub-second DAG pickup
    # Build each environment's Airflow virtualenv. Off only for control-plane tests and
    # benchmarks, where installing Airflow for every environment would measure pip, not us.
    airflow_venvs: bool = True
    uv_cache_dir: Path | None = None  # default: data_dir/cache/uv
    # The PostgreSQL server that holds every environment's Airflow metadata; None without
    # Airflow (--no-airflow), where no database is made.
    metadata_databases: MetadataDatabases | None = None
    # Called with an environment name when its DAGs changed; None parses them right away.
    dags_changed: Callable[[str], None] | None = None
    # The Airflow runtime (environments.airflow.runtime.manager.AirflowRuntime) when this host
    # runs environments' Airflow; typed loosely because the domain may not import it.
    airflow_runtime: Any = None

    @property
    def uv_cache(self) -> Path:
        if self.uv_cache_dir is not None:
            return self.uv_cache_dir
        if self.data_dir is None:
            raise RuntimeError("no data dir configured for the package cache")
        return self.data_dir / "cache" / "uv"

    def source_reader(self, spec: Mapping[str, Any]) -> AwsClients:
        """Clients that read an environment's source bucket as its execution role, as MWAA
        does: a role that may not read the bucket cannot smuggle its DAGs in."""
        return self.aws.as_role(spec["ExecutionRoleArn"])

    def workspace(self, name: str) -> Workspace:
        if self.data_dir is None:
            raise RuntimeError("no data dir configured for environment workspaces")
        return Workspace.for_environment(self.data_dir, name)
