"""The Airflow runtime of a control plane: every environment's supervisor, in one place.

The one entry point for the rest of Airdock:

- `start()` at start-up: stops the processes a killed control plane left behind (found by
  their pid files) and starts the monitor thread; `resume(...)` then starts the environments
  that were running;
- `prepare_database(plan)` and `run(plan)` from the reconciler's runtime step, then
  `wait_healthy(name)`;
- `remove(name, env_id)` on delete;
- `stop()` at a clean shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from environments import store
from environments.airflow import sandbox
from environments.airflow.metadb.databases import MetadataDatabases
from environments.airflow.metrics.catalog import WORKER_COUNT
from environments.airflow.metrics.hub import MetricsHub
from environments.airflow.runtime import cli, configuration, pidfiles, zygote
from environments.airflow.runtime.components import Component
from environments.airflow.runtime.credentials import RoleCredentials
from environments.airflow.runtime.fleet import FleetControl
from environments.airflow.runtime.home import (
    PORT_FILE,
    SECRETS_FILE,
    aws_folder,
    install_support_files,
    last_port,
    prepare_home,
    runtime_secrets,
)
from environments.airflow.runtime.join import join_bundle, write_join
from environments.airflow.runtime.logship import LogShipper
from environments.airflow.runtime.plan import RuntimePlan, file_digest
from environments.airflow.runtime.preparation import DatabasePreparation
from environments.airflow.runtime.process_sets import ProcessSets
from environments.airflow.runtime.remote_registry import RemoteWorkers
from environments.airflow.runtime.rollout import STOPPING, Applied, roll
from environments.airflow.runtime.supervisor import EnvironmentSupervisor, Health
from environments.airflow.runtime.templates import SchemaTemplates
from environments.airflow.runtime.verdicts import HealthListener, HealthVerdicts
from environments.airflow.venv_store import current_venv
from environments.aws.clients import AwsClients
from environments.store import Store
from environments.workspace import Workspace

log = logging.getLogger(__name__)

__all__ = ["PORT_FILE", "SECRETS_FILE", "STATUS_FILE", "AirflowRuntime"]

STATUS_FILE = "runtime.json"
TICK_SECONDS = 1.0
# Database work runs as the scheduler's container would on MWAA.
MIGRATION = Component("migrate", "scheduler", ("db", "migrate"))
SHUTDOWN_GRACE = 6.0
# Environments whose processes run: a restarted control plane starts these again.
RUNNING_STATUSES = ("AVAILABLE", "UNAVAILABLE", "UPDATE_FAILED")


class AirflowRuntime(ProcessSets):
    def __init__(
        self,
        data_dir: Path,
        aws: AwsClients,
        databases: MetadataDatabases,
        *,
        on_health: HealthListener | None = None,
        mwaa_endpoint: str | None = None,
        zygote: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.mwaa_endpoint = mwaa_endpoint
        # Fork each set's processes from one import of Airflow (runtime.zygote), or not.
        self.zygote = zygote
        self.aws = aws
        self.databases = databases
        self._supervisors: dict[str, EnvironmentSupervisor] = {}
        # Sets beside the serving one: a new set coming up, old sets retiring after an update.
        self._others: dict[str, list[EnvironmentSupervisor]] = {}
        self._credentials: dict[str, RoleCredentials] = {}
        self._verdicts = HealthVerdicts(on_health)  # what the control plane is told
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._logs = LogShipper(aws)
        self._fleet = FleetControl(lambda: aws.client("sqs"))
        self.metrics = MetricsHub(aws)  # Airflow's statsd -> CloudWatch, as MWAA's sidecar
        self._remote = RemoteWorkers()  # workers that joined from other hosts
        self._database = DatabasePreparation(
            databases,
            self.workspace,
            lambda plan: self._environment(plan, MIGRATION),
            self._launch,
            self._secrets,
            self._prepare_home,
            SchemaTemplates(databases, data_dir / "templates"),
        )

    @property
    def aws_endpoint(self) -> str | None:
        return self.aws.target.endpoint_url

    def workspace(self, name: str) -> Workspace:
        return Workspace.for_environment(self.data_dir, name)

    # --- lifetime -----------------------------------------------------------------------

    def start(self) -> None:
        stopped = self.clear_leftovers()
        if stopped:
            log.info("stopped Airflow processes left by an earlier run: %s", ", ".join(stopped))
        for target, name in ((self._monitor, "airflow-monitor"), (self._ship, "airflow-logs")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.metrics.start()

    def clear_leftovers(self) -> list[str]:
        """Stop every recorded component still running from an earlier control plane."""
        stopped: list[str] = []
        root = self.data_dir / "environments"
        folders = list(root.glob("*/state/run")) if root.is_dir() else []
        with ThreadPoolExecutor(max(1, min(8, len(folders)))) as pool:
            results = pool.map(pidfiles.stop_recorded, folders)
            for folder, names in zip(folders, results, strict=True):
                stopped += [f"{folder.parents[1].name}/{n}" for n in names]
        return stopped

    def stop(self) -> None:
        """Stop every environment's processes, all at once and within SHUTDOWN_GRACE (the
        background worker itself gets little more before it is killed)."""
        with self._lock:
            self._stop.set()
            supervisors = list(self._supervisors.values())
            supervisors += [s for sets in self._others.values() for s in sets]
            self._supervisors.clear()
            self._others.clear()
        with ThreadPoolExecutor(max(1, len(supervisors))) as pool:
            list(pool.map(lambda s: s.stop(SHUTDOWN_GRACE), supervisors))
        for thread in self._threads:
            thread.join(5)
        self.metrics.stop()

    def resume(self, db: Store, *, region: str, account_id: str) -> None:
        """Start the environments that were running when the control plane last stopped."""
        with db.transaction() as session:
            names = [n for n, _ in store.environments_in(session, list(RUNNING_STATUSES))]
        for name in names:
            row = db.read_environment(name)
            if row is None or self._stop.is_set():
                continue
            venv = current_venv(self.workspace(name).venv)
            if venv is None:
                continue
            try:
                plan = self.plan_for(
                    name=name,
                    env_id=row.env_id,
                    spec=row.applied_spec or row.spec,
                    resources=row.resources or {},
                    region=region,
                    account_id=account_id,
                    venv=venv,
                )
                problem = self.prepare_database(plan)
                if problem is not None:
                    log.warning("environment %s cannot resume: %s", name, problem)
                    continue
                self.run(plan)
            except Exception:
                log.exception("resuming the Airflow of %s failed", name)

    # --- one environment ----------------------------------------------------------------

    def plan_for(
        self,
        *,
        name: str,
        env_id: str,
        spec: dict[str, Any],
        resources: dict[str, Any],
        region: str,
        account_id: str,
        venv: Path,
    ) -> RuntimePlan:
        queue = resources.get("celery_queue") or {}
        hostname = (resources.get("endpoints") or {}).get("webserver_hostname")
        workspace = self.workspace(name)
        return RuntimePlan(
            name=name,
            env_id=env_id,
            airflow_version=spec["AirflowVersion"],
            environment_class=spec.get("EnvironmentClass", "mw1.small"),
            schedulers=int(spec.get("Schedulers") or 1),
            min_workers=int(spec.get("MinWorkers") or 1),
            max_workers=int(spec.get("MaxWorkers") or 1),
            options={k: str(v) for k, v in (spec.get("AirflowConfigurationOptions") or {}).items()},
            logging=spec.get("LoggingConfiguration") or {},
            execution_role_arn=spec["ExecutionRoleArn"],
            queue_url=queue.get("url", ""),
            queue_name=queue.get("url", "").rsplit("/", 1)[-1],
            region=region,
            account_id=account_id,
            aws_endpoint=self.aws_endpoint,
            mwaa_endpoint=self.mwaa_endpoint,
            venv=venv,
            workspace=workspace.root,
            database_url=self.databases.address(name).sqlalchemy_url(),
            web_url=f"https://{hostname}" if hostname else "",
            extras={
                "plugins": str(spec.get("PluginsS3ObjectVersion") or ""),
                "startup": file_digest(workspace.state / "startup-env.json"),
            },
        )

    def prepare_database(self, plan: RuntimePlan) -> str | None:
        """Create the environment's database, migrate it to the plan's Airflow version and
        make Airdock's user in it, as far as not done yet (runtime.preparation); None when
        ready, else what went wrong."""
        with self._lock:
            serving = self._supervisors.get(plan.name)
        other_version = serving is not None and serving.plan.airflow_version != plan.airflow_version
        if other_version and self._database.needs_schema(plan):
            return None  # `run` migrates once the old set has stopped (runtime.rollout)
        return self._database.prepare(plan)

    def run(self, plan: RuntimePlan) -> Applied:
        """Make the environment's processes match `plan`: start them, roll them over to a new
        set after a change they read at start (runtime.rollout), or only change the number of
        workers. The serving set stays until its successor is healthy."""
        self._refresh_credentials(plan, force=True)
        self._write_cli_launch(plan)
        workspace = self.workspace(plan.name)
        bundle = join_bundle(plan, self._secrets(workspace), self._api_port(plan))
        write_join(workspace.state, bundle)
        with self._lock:
            if self._stop.is_set():
                return STOPPING
            supervisor = self._supervisors.get(plan.name)
            if supervisor is None:
                self._prepare_home(plan)
                supervisor = self._make_set(plan, self._api_port(plan), generation=0)
                pidfiles.stop_recorded(supervisor.run_dir)  # never two sets at once
                self._supervisors[plan.name] = supervisor
                # Under the lock: a concurrent stop() either sees this set or none of it.
                supervisor.start()
                return Applied(True)
        if supervisor.plan.restart_key() != plan.restart_key():
            applied = roll(self, supervisor, plan)
            with self._lock:
                serving = self._supervisors.get(plan.name)
            if serving is not None:  # `env status` shows the set that now serves at once
                self._publish(serving, serving.tick())
            return applied
        # New limits apply at once; the autoscaler moves within them from here.
        supervisor.plan = plan
        high = max(plan.max_workers, plan.min_workers)
        supervisor.scale(min(max(supervisor.workers_wanted, plan.min_workers), high))
        return Applied(True)

    # --- sets of processes, with runtime.process_sets and runtime.rollout ----------------

    def _make_set(self, plan: RuntimePlan, api_port: int, generation: int) -> EnvironmentSupervisor:
        def environment_for(plan: RuntimePlan, component: Component) -> dict[str, str]:
            # The set's own port: beside the serving set, a new one listens elsewhere.
            return self._environment(plan, component, api_port)

        return EnvironmentSupervisor(
            plan,
            api_port=api_port,
            environment_for=environment_for,
            launcher=self._launch,
            generation=generation,
            zygote_script=(
                self.workspace(plan.name).home / ".airdock" / zygote.SCRIPT if self.zygote else None
            ),
        )

    def change_schema(self, current: RuntimePlan, wanted: RuntimePlan) -> str | None:
        """Move the database from `current`'s Airflow version to `wanted`'s; None when done."""
        return self._database.change_schema(current, wanted)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_healthy(self, name: str, timeout: float) -> Health:
        deadline = time.monotonic() + timeout
        while True:
            # Published once healthy: the status file must say so before the environment
            # turns AVAILABLE, and the monitor's next round could come after a client looked.
            health = self.health(name, publish_healthy=True)
            if health.healthy or time.monotonic() >= deadline or self._stop.is_set():
                return health
            time.sleep(0.25)

    def health(self, name: str, publish_healthy: bool = False) -> Health:
        with self._lock:
            supervisor = self._supervisors.get(name)
        if supervisor is None:
            return Health(False, "not running")
        health = supervisor.tick()
        if publish_healthy and health.healthy:
            self._publish(supervisor, health)
        return health

    def is_running(self, name: str) -> bool:
        with self._lock:
            return name in self._supervisors

    def halt(self, name: str) -> None:
        """Stop the environment's processes (they are not restarted) and keep its data."""
        with self._lock:
            supervisor = self._supervisors.pop(name, None)
            others = self._others.pop(name, [])
            self._verdicts.forget(name)
        self._fleet.forget(name)
        for each in [supervisor, *others]:
            if each is not None:
                each.stop()
        pidfiles.stop_recorded(self.workspace(name).state / "run")
        self.workspace(name).write_json(STATUS_FILE, {"status": "stopped", "components": {}})

    def remove(self, name: str) -> None:
        """Stop the environment's processes for good (its database is dropped by its own
        provisioning step, after this one)."""
        self.halt(name)
        self._credentials.pop(name, None)
        self.metrics.forget(name)
        self._remote.forget(name)

    # --- background ---------------------------------------------------------------------

    def _monitor(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with self._lock:
                supervisors = list(self._supervisors.values())
            for supervisor in supervisors:
                try:
                    self._refresh_credentials(supervisor.plan)
                    health = supervisor.tick()
                    # Whatever else is unhealthy: workers that are still starting count as
                    # workers, and only ready workers seen idle may leave.
                    self._fleet.step(supervisor)
                    self._publish(supervisor, health)
                except Exception:
                    log.exception("supervising %s failed", supervisor.plan.name)

    def _publish(self, supervisor: EnvironmentSupervisor, health: Health) -> None:
        name = supervisor.plan.name
        remote = self._remote.of(name, supervisor.plan.database_url)
        status = {
            "healthy": health.healthy,
            "reason": health.reason,
            "updated_at": time.time(),
            "api_port": supervisor.api_port,
            "airflow_version": supervisor.plan.airflow_version,
            "components": health.components,
            "zygote": health.zygote,
            "workers": health.workers + sum(host["ready"] for host in remote),
            "remote_workers": remote,
            "workers_wanted": supervisor.workers_wanted,
            "autoscaling": self._fleet.report(name),
        }
        self.workspace(name).write_json(STATUS_FILE, status)
        self.metrics.gauge(name, WORKER_COUNT, status["workers"])
        self._verdicts.observe(name, health)

    def _ship(self) -> None:
        while not self._stop.wait(2.0):
            with self._lock:
                supervisors = list(self._supervisors.values())
            for supervisor in supervisors:
                try:
                    self._logs.ship(supervisor)
                except Exception:
                    log.exception("shipping the logs of %s failed", supervisor.plan.name)

    # --- helpers ------------------------------------------------------------------------

    def _refresh_credentials(self, plan: RuntimePlan, force: bool = False) -> None:
        creds = self._credentials.get(plan.name)
        if creds is None or creds.role_arn != plan.execution_role_arn:
            workspace = self.workspace(plan.name)
            account = sandbox.prepare(workspace)
            creds = RoleCredentials(
                aws_folder(workspace),
                plan.execution_role_arn,
                plan.region,
                plan.aws_endpoint,
                owner=(account.uid, account.gid) if account is not None else None,
            )
            creds.write_config()
            self._credentials[plan.name] = creds
            force = True
        if force or creds.due():
            creds.refresh(self.aws.client("sts"))

    def _environment(
        self, plan: RuntimePlan, component: Component, api_port: int | None = None
    ) -> dict[str, str]:
        workspace = self.workspace(plan.name)
        exports = workspace.read_json("startup-env.json", {})
        key = component.mwaa_component
        if plan.environment_class == "mw1.micro" and key != "webserver":
            key = "hybrid"
        folder = aws_folder(workspace)
        install_support_files(workspace)
        env = configuration.component_environment(
            plan,
            component.mwaa_component,
            startup_exports=exports.get(key, {}),
            api_port=api_port if api_port is not None else self._api_port(plan),
            secrets=self._secrets(workspace),
            aws_config=folder / "config",
            aws_credentials=folder / "credentials",
        )
        # Airflow 3's tasks send no outcome metrics: those are counted in the database.
        outcomes_from = plan.database_url if plan.major >= 3 else None
        env.update(
            self.metrics.variables(plan.name, plan.execution_role_arn, plan.options, outcomes_from)
        )
        return env

    def _write_cli_launch(self, plan: RuntimePlan) -> None:
        """How the CLI door runs `airflow <command>` in this environment: as the web server's
        container would on MWAA, with the same variables and the same sandbox."""
        component = Component("cli", "webserver", ())
        self.workspace(plan.name).write_json(
            cli.LAUNCH_FILE,
            {
                "airflow": str(plan.venv / "bin" / "airflow"),
                "airflow_version": plan.airflow_version,
                "env": self._environment(plan, component),
            },
        )

    def _launch(self, plan: RuntimePlan, argv: list, env: dict[str, str]) -> sandbox.Launch:
        """Every Airflow process runs user code (DAGs, plugins): as the environment, never
        with Airdock's rights (environments.airflow.sandbox)."""
        workspace = self.workspace(plan.name)
        return sandbox.confine(workspace, argv, env, workspace.home, writable=[workspace.home])

    def _prepare_home(self, plan: RuntimePlan) -> None:
        prepare_home(self.workspace(plan.name))

    @staticmethod
    def _secrets(workspace: Workspace) -> dict[str, str]:
        return runtime_secrets(workspace)

    def _api_port(self, plan: RuntimePlan) -> int:
        """The API/web server's loopback port: the serving set's, else the last one."""
        running = self._supervisors.get(plan.name)
        if running is not None:
            return running.api_port
        return last_port(self.workspace(plan.name))
