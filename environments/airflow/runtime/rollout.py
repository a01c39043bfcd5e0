"""Updates that need new processes, as MWAA's rolling update does them: no task is lost, and
an update that cannot come up leaves the previous processes serving.

Within one Airflow version the new set starts beside the old one, on a port of its own (two
schedulers, DAG processors or triggerers on one database is ordinary Airflow HA). Once every
new component is healthy it takes over, and the old set retires in the background: its
schedulers stop, its workers get Celery's warm shutdown (no new task; the running ones finish)
and its API server stops last. A new set that crash-loops, or is not healthy in time, is
stopped and the old one never noticed.

A version change moves the database schema, which no set can share with another version: the
old set retires first (its running tasks finish), the database migrates up (or down, with the
newer version's Airflow), and the new set starts. If it does not come up, the database goes
back to the previous version's schema and the previous set starts again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.supervisor import EnvironmentSupervisor

NEW_SET_WITHIN = 600.0  # a busy 2-core machine takes minutes to start a set
POLL_SECONDS = 0.5
SETTLE_SECONDS = 15.0


@dataclass(frozen=True)
class Applied:
    """What `AirflowRuntime.run` did. `started` is False when the runtime is stopping and
    did nothing; `error` says why an update was given up (the previous processes serve on)."""

    started: bool
    error: str | None = None


STOPPING = Applied(False)


class Sets(Protocol):
    """What a rollout needs of the runtime (manager.AirflowRuntime): its sets of processes."""

    @property
    def stopping(self) -> bool: ...

    def new_set(self, plan: RuntimePlan, generation: int) -> EnvironmentSupervisor: ...

    def take_over(self, supervisor: EnvironmentSupervisor) -> EnvironmentSupervisor | None: ...

    def detach(self, supervisor: EnvironmentSupervisor) -> None: ...

    def retire_set(self, supervisor: EnvironmentSupervisor | None) -> None: ...

    def forget_set(self, supervisor: EnvironmentSupervisor) -> None: ...

    def change_schema(self, current: RuntimePlan, wanted: RuntimePlan) -> str | None: ...


class Stopping(Exception):
    """The runtime shuts down while a new set comes up: a pause, not a verdict."""


def roll(runtime: Sets, current: EnvironmentSupervisor, plan: RuntimePlan) -> Applied:
    try:
        if plan.airflow_version != current.plan.airflow_version:
            return _change_version(runtime, current, plan)
        return _side_by_side(runtime, current, plan)
    except Stopping:
        return STOPPING


def _side_by_side(runtime: Sets, current: EnvironmentSupervisor, plan: RuntimePlan) -> Applied:
    candidate = runtime.new_set(plan, generation=current.generation + 1)
    try:
        problem = bring_up(runtime, candidate)
    except Stopping:
        runtime.retire_set(candidate)
        raise
    if problem is not None:
        runtime.retire_set(candidate)  # a worker of it may have taken a task already
        return Applied(True, f"The updated Airflow processes did not come up ({problem}); "
                             "the previous ones kept running.")  # fmt: skip
    runtime.retire_set(runtime.take_over(candidate))
    return Applied(True)


def _change_version(runtime: Sets, current: EnvironmentSupervisor, plan: RuntimePlan) -> Applied:
    previous = current.plan
    runtime.detach(current)
    current.retire()  # its running tasks finish on the schema they started with
    runtime.forget_set(current)
    problem = runtime.change_schema(previous, plan)
    if problem is None:
        candidate = runtime.new_set(plan, generation=current.generation + 1)
        try:
            problem = bring_up(runtime, candidate)
        except Stopping:
            runtime.retire_set(candidate)
            raise
        if problem is None:
            runtime.take_over(candidate)
            return Applied(True)
        candidate.retire(0.0)  # nothing may touch the schema while it goes back
        runtime.forget_set(candidate)
        back = runtime.change_schema(plan, previous)
        if back is not None:
            problem = f"{problem}; restoring the database failed too: {back}"
    restored = runtime.new_set(previous, generation=current.generation + 2)
    restored.start()
    runtime.take_over(restored)
    return Applied(True, f"Changing Apache Airflow from {previous.airflow_version} to "
                         f"{plan.airflow_version} failed ({problem}); the previous version "
                         "runs again.")  # fmt: skip


def bring_up(runtime: Sets, candidate: EnvironmentSupervisor) -> str | None:
    """Start a new set and watch it until healthy: None, or why it will not be.

    Healthy must last SETTLE_SECONDS with no process exiting: beside the serving set, the
    health endpoint reports the newest scheduler heartbeat of either set, so a new scheduler
    that crashes at start can look healthy for a moment."""
    candidate.start()
    deadline = time.monotonic() + NEW_SET_WITHIN
    healthy_since: tuple[float, int] | None = None  # (since when, exits by then)
    while True:
        if runtime.stopping:
            raise Stopping
        health = candidate.tick()
        looping = candidate.crash_looping()
        if looping is not None:
            return looping
        now = time.monotonic()
        if not health.healthy or (healthy_since and candidate.exits() != healthy_since[1]):
            healthy_since = None
        elif healthy_since is None:
            healthy_since = (now, candidate.exits())
        elif now - healthy_since[0] >= SETTLE_SECONDS:
            return None
        if now >= deadline:
            return f"not healthy within {NEW_SET_WITHIN:.0f} s: {health.reason}"
        time.sleep(POLL_SECONDS)
