"""An environment's health, as the runtime reports it: `state/runtime.json` for `airdock env
status` and the console, and a verdict for the control plane's status (UNAVAILABLE after a
component stays down for a while, AVAILABLE again at once when it recovers)."""

from __future__ import annotations

import time
from collections.abc import Callable

from environments.airflow.runtime.supervisor import EnvironmentSupervisor, Health
from environments.workspace import Workspace

STATUS_FILE = "runtime.json"
# A component may be down this long (a restart after a crash) before the environment is
# reported UNAVAILABLE; recovery is reported at once.
UNAVAILABLE_AFTER_SECONDS = 30.0
HEALTH_REPORT_EVERY_SECONDS = 5.0

# Told when an environment's health changes: (name, healthy, reason).
HealthListener = Callable[[str, bool, str], None]


class HealthReport:
    def __init__(self, on_health: HealthListener | None) -> None:
        self.on_health = on_health
        self._unhealthy_since: dict[str, float] = {}
        self._reported: dict[str, tuple[bool, float]] = {}

    def forget(self, name: str) -> None:
        self._unhealthy_since.pop(name, None)
        self._reported.pop(name, None)

    def publish(
        self, workspace: Workspace, supervisor: EnvironmentSupervisor, health: Health
    ) -> None:
        name = supervisor.plan.name
        status = {
            "healthy": health.healthy,
            "reason": health.reason,
            "updated_at": time.time(),
            "api_port": supervisor.api_port,
            "airflow_version": supervisor.plan.airflow_version,
            "components": health.components,
            "workers": health.workers,
            "workers_wanted": supervisor.workers_wanted,
        }
        workspace.write_json(STATUS_FILE, status)
        now = time.monotonic()
        if health.healthy:
            self._unhealthy_since.pop(name, None)
            verdict: bool | None = True
        elif health.starting:  # a fresh set coming up is no failure
            self._unhealthy_since.pop(name, None)
            verdict = None
        else:
            since = self._unhealthy_since.setdefault(name, now)
            verdict = False if now - since >= UNAVAILABLE_AFTER_SECONDS else None
        last = self._reported.get(name)
        if verdict is None or self.on_health is None:
            return
        if last is None or last[0] != verdict or now - last[1] >= HEALTH_REPORT_EVERY_SECONDS:
            self._reported[name] = (verdict, now)
            self.on_health(name, verdict, health.reason)
