"""Settings of `airdock`, each declared once: default, help, value check, flag and variable.

Built once in `main`, never at import time, so tests can run many servers side by side.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from controlplane import options as check
from controlplane.options import option
from environments.naming import Placement

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass(frozen=True)
class CommonSettings:
    """Settings of every `airdock` command."""

    log_level: str = option(
        "INFO",
        "log verbosity",
        parse=check.one_of(LOG_LEVELS),
        metavar="{" + ",".join(LOG_LEVELS) + "}",
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """Settings of `airdock serve`."""

    data_dir: Path = option(
        Path(".airdock"),
        "state directory: store, embedded AWS state, workspaces, written client files",
        parse=Path,
        metavar="DIR",
    )
    host: str = option("127.0.0.1", "address to bind")
    port: int = option(8080, "port to bind; 0 picks a free one", parse=check.port)
    web_port: int = option(
        8443,
        "HTTPS port of the environments' web servers, each on a loopback address of its own "
        "(127.x.y.z); 0 picks a free one",
        parse=check.port,
    )
    aws_endpoint: str | None = option(
        None,
        "send provisioning to this AWS endpoint (standard credential chain)",
        parse=check.http_url,
        shown="start an embedded AWS",
        metavar="URL",
    )
    real_aws: bool = option(
        False, "use AWS's own endpoints and the standard credential chain", switch=True
    )
    region: str = option(
        "us-east-1", "region this endpoint serves, used in ARNs", parse=check.region
    )
    account_id: str = option("123456789012", "account id used in ARNs", parse=check.account_id)
    database_url: str | None = option(
        None,
        "SQLAlchemy URL of the store, e.g. postgresql+psycopg://user@db:5432/airdock",
        parse=check.database_url,
        shown="SQLite in the data dir",
        metavar="URL",
    )
    iam_config: Path | None = option(
        None,
        "YAML file of users, groups, roles and policies",
        parse=Path,
        shown="none",
        metavar="FILE",
    )
    # SigV4 + IAM on every call. Off only for benchmark comparisons, hence hidden and not
    # settable from the environment, where it could be left behind unnoticed.
    auth_enabled: bool = option(True, "", flag="--auth", parse=check.on_off, env=False, hidden=True)
    api_workers: int | None = option(
        None,
        "processes serving the API, sharing one listening socket",
        parse=check.at_least_one,
        shown="number of CPU cores",
        metavar="N",
    )
    reconciler_workers: int = option(
        8, "environments worked on at once per replica", parse=check.at_least_one, metavar="N"
    )
    poll_interval: float = option(
        0.5,
        "seconds between reconciler passes (requests also wake it)",
        parse=check.seconds,
        metavar="SECONDS",
    )
    request_timeout: float = option(
        10.0,
        "seconds a client has to send a request's headers, and again its body",
        parse=check.seconds,
        metavar="SECONDS",
    )
    max_environments: int = option(
        500, "environments per account and region", parse=check.at_least_one, metavar="N"
    )
    # S3 events bring a change within moments; the full pass is the safety net behind them
    # (a lost event, a bucket written before its notification existed), so it can be slow.
    dag_sync_interval: float = option(
        30.0,
        "seconds between full DAG sync passes (S3 events bring changes sooner)",
        parse=check.seconds,
        metavar="SECONDS",
    )
    drift_check_interval: float = option(
        60.0,
        "seconds between checks that each environment's queue, log groups and bucket "
        "notification entry still exist (what was deleted is made again)",
        parse=check.seconds,
        metavar="SECONDS",
    )
    dag_events: bool = True  # S3 event notifications for DAG pickup; off only in tests
    airflow_venvs: bool = option(
        True,
        "provision without building Airflow virtualenvs (control-plane tests, benchmarks)",
        flag="--no-airflow",
        switch=False,
        shown="build them",
    )
    airflow_zygote: bool = option(
        True,
        "start each of an environment's Airflow processes in an interpreter of its own, "
        "rather than forking them from one that imported Airflow once (more memory)",
        flag="--no-airflow-zygote",
        switch=False,
        shown="fork them from one",
    )
    airflow_database_url: str | None = option(
        None,
        "PostgreSQL server for the environments' Airflow metadata, e.g. "
        "postgresql://postgres@db:5432/postgres (a role that may create databases and roles)",
        parse=check.postgres_url,
        shown="an embedded PostgreSQL in the data dir",
        metavar="URL",
    )
    uv_cache_dir: Path | None = option(
        None,
        "package cache shared by the Airflow virtualenvs",
        parse=Path,
        shown="<data dir>/cache/uv",
        metavar="DIR",
    )

    def __post_init__(self) -> None:
        if self.aws_endpoint is not None and self.real_aws:
            raise ValueError("--aws-endpoint and --real-aws exclude each other; give one")

    @property
    def api_processes(self) -> int:
        return self.api_workers or os.cpu_count() or 1

    def placement(self) -> Placement:
        return Placement(
            account_id=self.account_id, region=self.region, webserver_port=self.web_port
        )

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'airdock.db'}"
