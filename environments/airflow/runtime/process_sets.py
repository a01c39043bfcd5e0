"""The serving set of processes of each environment, and the sets beside it during an update.

A mixin of `manager.AirflowRuntime`, which owns the state (`_supervisors`: the serving set by
environment; `_others`: a new set coming up, old sets retiring) and its lock. These are the
moves `runtime.rollout` makes with them.
"""

from __future__ import annotations

import threading

from environments.airflow.runtime.home import free_port, prepare_home, remember_port
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.supervisor import EnvironmentSupervisor
from environments.workspace import Workspace


class ProcessSets:
    _lock: threading.Lock
    _supervisors: dict[str, EnvironmentSupervisor]
    _others: dict[str, list[EnvironmentSupervisor]]

    def workspace(self, name: str) -> Workspace:
        raise NotImplementedError

    def _make_set(self, plan: RuntimePlan, api_port: int, generation: int) -> EnvironmentSupervisor:
        raise NotImplementedError

    def new_set(self, plan: RuntimePlan, generation: int) -> EnvironmentSupervisor:
        """A set for `plan` beside the serving one (not started), on a port of its own."""
        prepare_home(self.workspace(plan.name))
        made = self._make_set(plan, free_port(), generation)
        with self._lock:
            self._others.setdefault(plan.name, []).append(made)
        return made

    def take_over(self, supervisor: EnvironmentSupervisor) -> EnvironmentSupervisor | None:
        """Make `supervisor` the serving set; the one it replaces (returned) is kept beside."""
        name = supervisor.plan.name
        with self._lock:
            self._drop_other(supervisor)
            previous = self._supervisors.get(name)
            self._supervisors[name] = supervisor
            if previous is not None:
                self._others.setdefault(name, []).append(previous)
        remember_port(self.workspace(name), supervisor.api_port)
        return previous

    def detach(self, supervisor: EnvironmentSupervisor) -> None:
        """Stop serving `supervisor` (it is kept beside, so a shutdown still stops it)."""
        with self._lock:
            if self._supervisors.get(supervisor.plan.name) is supervisor:
                del self._supervisors[supervisor.plan.name]
                self._others.setdefault(supervisor.plan.name, []).append(supervisor)

    def retire_set(self, supervisor: EnvironmentSupervisor | None) -> None:
        """Retire a set in the background (its workers finish their tasks), then forget it."""
        if supervisor is None:
            return

        def retire() -> None:
            try:
                supervisor.retire()
            finally:
                self.forget_set(supervisor)

        name = f"airflow-retire-{supervisor.plan.name}"
        threading.Thread(target=retire, name=name, daemon=True).start()

    def forget_set(self, supervisor: EnvironmentSupervisor) -> None:
        with self._lock:
            self._drop_other(supervisor)

    def _drop_other(self, supervisor: EnvironmentSupervisor) -> None:
        sets = self._others.get(supervisor.plan.name, [])
        if supervisor in sets:
            sets.remove(supervisor)
