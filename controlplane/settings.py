"""Settings for `airdock serve`, from command-line flags with AIRDOCK_* environment fallbacks.

Built once in `main`, never at import time, so tests can run many servers side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"AIRDOCK_{name}", default)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    aws_endpoint: str | None = None  # None: start the embedded AWS (unless real_aws)
    real_aws: bool = False  # AWS's own endpoints and the standard credential chain
    region: str = "us-east-1"
    account_id: str = "123456789012"
    database_url: str | None = None  # None: SQLite under data_dir
    iam_config: Path | None = None
    # SigV4 + IAM on every call. Off only for benchmark comparisons (hidden `--auth off`).
    auth_enabled: bool = True
    reconciler_workers: int = 8
    poll_interval: float = 0.5
    max_environments: int = 500
    dag_sync_interval: float = 5.0
    dag_events: bool = True
    airflow_venvs: bool = True
    uv_cache_dir: Path | None = None  # shared package cache for virtualenvs

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'airdock.db'}"

    @classmethod
    def defaults_from_env(cls) -> dict[str, object]:
        """Values the environment supplies when a flag is not given."""
        found: dict[str, object] = {}
        for field, name, cast in (
            ("host", "HOST", str),
            ("port", "PORT", int),
            ("aws_endpoint", "AWS_ENDPOINT", str),
            ("region", "REGION", str),
            ("account_id", "ACCOUNT_ID", str),
            ("database_url", "DATABASE_URL", str),
            ("iam_config", "IAM_CONFIG", Path),
            ("reconciler_workers", "RECONCILER_WORKERS", int),
            ("poll_interval", "POLL_INTERVAL", float),
            ("max_environments", "MAX_ENVIRONMENTS", int),
            ("dag_sync_interval", "DAG_SYNC_INTERVAL", float),
            ("uv_cache_dir", "UV_CACHE_DIR", Path),
        ):
            raw = _env(name)
            if raw:
                found[field] = cast(raw)
        return found
