"""The processes of one environment and the command each runs, per Airflow major version."""

from __future__ import annotations

from dataclasses import dataclass

from environments.airflow.runtime.plan import RuntimePlan

# Component kind -> the LoggingConfiguration module whose log group receives its output.
LOG_MODULE = {
    "scheduler": "SchedulerLogs",
    "triggerer": "SchedulerLogs",
    "dag-processor": "DagProcessingLogs",
    "api-server": "WebserverLogs",
    "webserver": "WebserverLogs",
    "worker": "WorkerLogs",
}


@dataclass(frozen=True)
class Component:
    name: str  # unique in the environment: "scheduler-1", "worker-2", "api-server", ...
    kind: str  # a key of LOG_MODULE
    command: tuple[str, ...]  # arguments after `airflow`

    @property
    def mwaa_component(self) -> str:
        """MWAA_AIRFLOW_COMPONENT: the container this would run in on MWAA."""
        if self.kind == "worker":
            return "worker"
        if self.kind in ("api-server", "webserver"):
            return "webserver"
        return "scheduler"

    @property
    def log_module(self) -> str:
        return LOG_MODULE[self.kind]


def web_component(plan: RuntimePlan) -> Component:
    if plan.major >= 3:
        return Component("api-server", "api-server", ("api-server", "--workers", "1"))
    return Component("webserver", "webserver", ("webserver",))


def fixed_components(plan: RuntimePlan) -> list[Component]:
    """Everything but the workers, whose number changes while the environment runs."""
    components = [
        Component(f"scheduler-{i}", "scheduler", ("scheduler", "--skip-serve-logs"))
        for i in range(1, max(plan.schedulers, 1) + 1)
    ]
    components.append(Component("dag-processor", "dag-processor", ("dag-processor",)))
    components.append(Component("triggerer", "triggerer", ("triggerer", "--skip-serve-logs")))
    components.append(web_component(plan))
    return components


def worker(plan: RuntimePlan, index: int) -> Component:
    hostname = f"worker-{index}@{plan.name}"
    return Component(
        f"worker-{index}",
        "worker",
        ("celery", "worker", "--skip-serve-logs", "--celery-hostname", hostname,
         "--queues", plan.queue_name, "--without-gossip", "--without-mingle"),
    )  # fmt: skip


def health_path(plan: RuntimePlan) -> str:
    return "/api/v2/monitor/health" if plan.major >= 3 else "/health"
