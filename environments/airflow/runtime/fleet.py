"""One round of worker autoscaling per environment: read the load, decide, apply.

The load is what MWAA scales on: the task instances in state queued or running in the
environment's metadata database. The Celery queue's depth (messages waiting, and those handed
to a worker and not yet deleted) is read beside it for `airdock env status`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from environments.airflow.metadb.databases import libpq_url
from environments.airflow.runtime.autoscale import Autoscaler, FleetLoad
from environments.airflow.runtime.supervisor import EnvironmentSupervisor

log = logging.getLogger(__name__)

# How often the load is read and a decision made (the monitor ticks every second).
ROUND_SECONDS = 2.0
TASK_COUNTS = (
    "SELECT state, count(*) FROM task_instance WHERE state IN ('queued', 'running') GROUP BY state"
)


class FleetControl:
    def __init__(self, sqs_client: Callable[[], Any]) -> None:
        """`sqs_client()` gives an SQS client of the environments' AWS."""
        self._sqs = sqs_client
        self._scalers: dict[str, Autoscaler] = {}
        self._queues: dict[str, dict[str, int]] = {}
        self._next: dict[str, float] = {}

    def step(self, supervisor: EnvironmentSupervisor) -> None:
        """One round for this environment, if one is due."""
        plan = supervisor.plan
        now = time.monotonic()
        if now < self._next.get(plan.name, 0.0):
            return
        self._next[plan.name] = now + ROUND_SECONDS
        self._queues[plan.name] = self._queue_depth(plan.queue_url)
        counts = self._task_counts(plan.name, libpq_url(plan.database_url))
        if counts is None:  # not migrated yet, or the server is away: no decision
            return
        supervisor.observe_idle()
        load = FleetLoad(
            workers=supervisor.workers_wanted,
            min_workers=plan.min_workers,
            max_workers=plan.max_workers,
            concurrency=plan.worker_concurrency,
            queued=counts.get("queued", 0),
            running=counts.get("running", 0),
        )
        scaler = self._scalers.setdefault(plan.name, Autoscaler())
        decision = scaler.consider(load)
        if not decision.changes(load):
            return
        if decision.target > load.workers or load.workers > max(load.max_workers, load.min_workers):
            supervisor.scale(decision.target)  # out, or down to a lowered MaxWorkers
        else:
            supervisor.retire_idle(load.workers - decision.target)
        scaler.applied(load, supervisor.workers_wanted)
        if supervisor.workers_wanted != load.workers:
            log.info(
                "environment %s: %d -> %d workers (%s)",
                plan.name, load.workers, supervisor.workers_wanted, decision.reason,
            )  # fmt: skip

    def report(self, name: str) -> dict:
        scaler = self._scalers.get(name)
        return {
            "queue": self._queues.get(name, {}),
            **(scaler.report() if scaler else Autoscaler().report()),
        }

    def forget(self, name: str) -> None:
        for table in (self._scalers, self._queues, self._next):
            table.pop(name, None)

    def _task_counts(self, name: str, url: str) -> dict[str, int] | None:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                return {state: int(n) for state, n in conn.execute(TASK_COUNTS).fetchall()}
        except psycopg.Error as err:
            log.debug("task counts of %s unavailable: %s", name, err)
            return None

    def _queue_depth(self, url: str) -> dict[str, int]:
        if not url:
            return {}
        try:
            attributes = self._sqs().get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        except (BotoCoreError, ClientError) as err:
            log.debug("queue depth of %s unavailable: %s", url, err)
            return {}
        return {
            "waiting": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        }
