"""What a worker host prepares before it starts workers: the environment as the MWAA API
describes it, the execution role's credentials, the DAGs and the virtualenv.

Everything comes from the environment's AWS and the MWAA API, with the operator's
credentials, plus the join file from the control plane's host (the metadata database's
login, the shared Airflow secrets and the execution API's address). The DAGs are mirrored from
the same S3 prefix with the same code as on the control plane's host, the virtualenv is
built from the same lock and requirements.txt, and the startup script runs before the workers
start, its exports in their environment.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from environments.airflow.runtime import configuration
from environments.airflow.runtime.credentials import RoleCredentials
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.venv_store import current_venv
from environments.airflow.venvs import build_venv
from environments.contents.archives import extract_zip
from environments.contents.dagsync import DagSyncer
from environments.contents.startup import (
    DEFAULT_TIMEOUT_SECONDS,
    mwaa_variables,
    run_startup_script,
)
from environments.plumbing.files import atomic_write
from environments.workspace import Workspace

log = logging.getLogger(__name__)


class WorkerSetupError(Exception):
    """The worker host cannot join the environment; the message says why."""


@dataclass
class WorkerOptions:
    name: str
    join: dict[str, Any]
    work_dir: Path
    uv_cache: Path
    profile: str | None = None
    region: str | None = None
    mwaa_endpoint: str | None = None
    aws_endpoint: str | None = None
    database_url: str | None = None  # overrides the join file's (another host, another address)
    execution_api_url: str | None = None
    concurrency: int | None = None
    workers: int = 1
    host_id: str = field(default_factory=socket.gethostname)
    # The mirror's polling pass; a task whose DAG file is not here yet asks for one at once.
    sync_seconds: float = 3.0


@dataclass
class Joined:
    """An environment ready to run workers on this host."""

    plan: RuntimePlan
    environment: dict[str, Any]  # GetEnvironment's answer
    credentials: RoleCredentials
    workspace: Workspace
    concurrency: int
    execution_api_url: str
    startup_exports: dict[str, str] = field(default_factory=dict)  # the startup script's


class WorkerSetup:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.session = boto3.session.Session(
            profile_name=options.profile, region_name=options.region
        )
        self.region = self.session.region_name or "us-east-1"
        self.workspace = Workspace(options.work_dir / "environments" / options.name)

    # --- clients ------------------------------------------------------------------------

    def operator_client(self, service: str) -> Any:
        endpoint = self.options.mwaa_endpoint if service == "mwaa" else self.options.aws_endpoint
        config = Config(inject_host_prefix=False) if service == "mwaa" else None
        return self.session.client(service, endpoint_url=endpoint, config=config)

    @functools.cached_property
    def aws_endpoint(self) -> str | None:
        """The environment's AWS as this host reaches it: the flag, else the profile's, else
        AWS's own (None)."""
        if self.options.aws_endpoint:
            return self.options.aws_endpoint
        url = self.operator_client("sts").meta.endpoint_url
        return None if (urlsplit(url).hostname or "").endswith("amazonaws.com") else url

    def role_client(self, credentials: RoleCredentials, service: str) -> Any:
        keys = json.loads(credentials.keys_file.read_text())
        session = boto3.session.Session(
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
            region_name=self.region,
        )
        config = Config(s3={"addressing_style": "path"}) if service == "s3" else None
        return session.client(service, endpoint_url=self.aws_endpoint, config=config)

    # --- steps --------------------------------------------------------------------------

    def get_environment(self) -> dict[str, Any]:
        """GetEnvironment's answer, as the operator; any client error says why it failed."""
        mwaa = self.operator_client("mwaa")
        try:
            return mwaa.get_environment(Name=self.options.name)["Environment"]
        except Exception as err:
            raise WorkerSetupError(f"GetEnvironment {self.options.name} failed: {err}") from None

    def describe(self) -> dict[str, Any]:
        env = self.get_environment()
        if env.get("Status") not in ("AVAILABLE", "UPDATING", "UNAVAILABLE"):
            raise WorkerSetupError(f"environment {self.options.name} is {env.get('Status')}")
        if env.get("AirflowVersion") != self.options.join["airflow_version"]:
            raise WorkerSetupError(
                f"the join file is for Airflow {self.options.join['airflow_version']}, the "
                f"environment runs {env.get('AirflowVersion')}: take a fresh join file"
            )
        return env

    def credentials(self, env: dict[str, Any]) -> RoleCredentials:
        folder = self.workspace.home / ".airdock" / "aws"
        folder.mkdir(parents=True, exist_ok=True)
        creds = RoleCredentials(folder, env["ExecutionRoleArn"], self.region, self.aws_endpoint)
        creds.write_config()
        if not creds.refresh(self.operator_client("sts")):
            raise WorkerSetupError(creds.error or "assuming the execution role failed")
        return creds

    def sync_dags(self, env: dict[str, Any], credentials: RoleCredentials) -> None:
        bucket = env["SourceBucketArn"].split(":::", 1)[1]
        report = DagSyncer(self.workspace).sync(
            self.role_client(credentials, "s3"), bucket, env.get("DagS3Path") or "dags"
        )
        if report.changed:
            log.info("DAGs: %d downloaded, %d deleted", len(report.downloaded), len(report.deleted))

    def _artifact(
        self, env: dict[str, Any], credentials: RoleCredentials, kind: str
    ) -> bytes | None:
        key = env.get(f"{kind}S3Path")
        if not key:
            return None
        bucket = env["SourceBucketArn"].split(":::", 1)[1]
        extra = {}
        if env.get(f"{kind}S3ObjectVersion"):
            extra["VersionId"] = env[f"{kind}S3ObjectVersion"]
        answer = self.role_client(credentials, "s3").get_object(Bucket=bucket, Key=key, **extra)
        return answer["Body"].read()

    def venv(self, env: dict[str, Any], credentials: RoleCredentials) -> Path:
        plugins = self._artifact(env, credentials, "Plugins")
        if plugins is not None:
            archive = self.workspace.state / "plugins.zip"
            atomic_write(archive, plugins)
            extract_zip(archive, self.workspace.plugins)
        result = build_venv(
            self.workspace.venv,
            env["AirflowVersion"],
            self._artifact(env, credentials, "Requirements"),
            cache_dir=self.options.uv_cache,
            plugins_dir=self.workspace.plugins,
        )
        venv = current_venv(self.workspace.venv)
        if not result.ok or venv is None:
            raise WorkerSetupError(f"the virtualenv cannot be built: {result.error_message}")
        return venv

    def startup_exports(self, env: dict[str, Any], credentials: RoleCredentials) -> dict[str, str]:
        """Run the environment's startup script, as MWAA does in each worker's container
        before the worker starts, and give back what it exported. It runs as this host's
        workers do: as the operator who started `airdock worker`."""
        body = self._artifact(env, credentials, "StartupScript")
        if body is None:
            return {}
        script = self.workspace.state / "startup.sh"
        atomic_write(script, body)
        variables = mwaa_variables(
            component="worker",
            env_name=self.options.name,
            env_id=self.options.join["env_id"],
            airflow_home=self.workspace.home,
            airflow_version=env["AirflowVersion"],
            region=self.region,
            account_id=env["ExecutionRoleArn"].split(":")[4],
        )
        run = run_startup_script(script, variables, cwd=self.workspace.home)
        log_path = self.workspace.state / "logs" / "startup-script.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("\n".join(run.log_lines()) + "\n")
        if not run.ok:
            raise WorkerSetupError(
                f"the startup script {env['StartupScriptS3Path']} "
                f"{run.failure(DEFAULT_TIMEOUT_SECONDS)}; its output is in {log_path}"
            )
        if run.exported:
            log.info("startup script exported %s", ", ".join(sorted(run.exported)))
        return run.exported

    def join(self) -> Joined:
        self.workspace.create()
        (self.workspace.home / "logs").mkdir(parents=True, exist_ok=True)
        env = self.describe()
        credentials = self.credentials(env)
        self.sync_dags(env, credentials)
        venv = self.venv(env, credentials)
        exports = self.startup_exports(env, credentials)
        join = self.options.join
        queue_url = self._queue_url(env, credentials) or join["queue_url"]
        role = env["ExecutionRoleArn"]
        options = {k: str(v) for k, v in (env.get("AirflowConfigurationOptions") or {}).items()}
        plan = RuntimePlan(
            name=self.options.name,
            env_id=join["env_id"],
            airflow_version=env["AirflowVersion"],
            environment_class=env.get("EnvironmentClass") or "mw1.small",
            schedulers=int(env.get("Schedulers") or 1),
            min_workers=self.options.workers,
            max_workers=self.options.workers,
            options=options,
            logging=env.get("LoggingConfiguration") or {},
            execution_role_arn=role,
            queue_url=queue_url,
            queue_name=queue_url.rsplit("/", 1)[-1],
            region=self.region,
            account_id=role.split(":")[4],
            aws_endpoint=self.aws_endpoint,
            venv=venv,
            workspace=self.workspace.root,
            database_url=self.options.database_url or join["database_url"],
        )
        support = self.workspace.home / ".airdock"
        for module, source in (
            (configuration.CELERY_CONFIG_MODULE, configuration.CELERY_CONFIG_SOURCE),
            (configuration.DAG_WAIT_MODULE, configuration.DAG_WAIT_SOURCE),
            (configuration.FORK_SHARING_MODULE, configuration.FORK_SHARING_SOURCE),
        ):
            atomic_write(support / f"{module}.py", source.read_bytes(), mode=0o644)
        return Joined(
            plan=plan,
            environment=env,
            credentials=credentials,
            workspace=self.workspace,
            concurrency=self.options.concurrency or plan.worker_concurrency,
            execution_api_url=self.options.execution_api_url or join["execution_api_url"],
            startup_exports=exports,
        )

    def _queue_url(self, env: dict[str, Any], credentials: RoleCredentials) -> str | None:
        """The queue's URL as this host's endpoint gives it (the join file's names the control
        plane's host)."""
        arn = env.get("CeleryExecutorQueue") or ""
        parts = arn.split(":")
        if len(parts) < 6:
            return None
        try:
            sqs = self.role_client(credentials, "sqs")
            return sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])[
                "QueueUrl"
            ]
        except Exception as err:  # the join file's URL is the fallback
            log.warning("GetQueueUrl for %s failed: %s", arn, err)
            return None
