"""Drift: resources an environment owns that were deleted from outside Airdock.

Every `interval` seconds one replica (a lock in the store elects it) compares what the resting
environments recorded with what exists: their Celery queues, their log groups and their entries
in the source buckets' notification configurations, plus the shared DAG-event queue. The cost
stays flat as environments grow: one paginated listing of queues, one of log groups, and one read
per source bucket, never one call per environment. Listings may lag behind on real AWS, so a
resource a listing misses is looked up once by name before it counts as gone.

An environment with something gone gets a repair: the steps that make those resources run again
(the reconciler's work, under its lease). If a repair cannot succeed, the environment becomes
UNAVAILABLE with the reason in LastUpdate.Error, and later checks try again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from environments import store
from environments.aws.errors import error_code
from environments.errors import ConcurrentModification
from environments.host import HostServices
from environments.lifecycle import Status
from environments.naming import DAG_EVENT_QUEUE, Placement
from environments.plumbing.repeats import RepeatLimiter
from environments.provisioning.steps.celery_queue import CeleryQueue
from environments.provisioning.steps.dag_events import DagEvents, ensure_event_queue
from environments.provisioning.steps.log_groups import LogGroups
from environments.spec import log_group_name
from environments.store import EnvironmentRow, Store

log = logging.getLogger(__name__)
_repeats = RepeatLimiter(log, interval=600.0)

CHECKED = [Status.AVAILABLE.value, Status.UPDATE_FAILED.value, Status.UNAVAILABLE.value]
ELECTION_LOCK = "drift-check"

Gone = dict[str, list[tuple[str, str]]]  # environment -> [(step that remakes it, what is gone)]


class DriftWatch:
    def __init__(
        self,
        db: Store,
        placement: Placement,
        services: HostServices,
        step_names: list[str],
        *,
        owner: str,
        interval: float,
        wake: Callable[[], None],
    ) -> None:
        self._db = db
        self._placement = placement
        self._services = services
        self._step_names = step_names
        self._owner = owner
        self._interval = interval
        self._wake = wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="drift-check", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._elected():
                    self.check()
            except Exception as err:
                _repeats.error(("check", repr(err)), "drift check failed", exc_info=True)

    def _elected(self) -> bool:
        """One replica checks per interval: the lock is taken for the interval, not released."""
        return self._db.take_lock(ELECTION_LOCK, self._owner, self._interval * 0.9)

    # --- one check --------------------------------------------------------------------

    def check(self) -> Gone:
        """Look once; schedule a repair for every environment with something gone."""
        with self._db.transaction() as session:
            rows = [row for row in store.rows_in(session, CHECKED) if _eligible(row)]
        if not rows:
            return {}
        gone = self._find_gone(rows)
        for row in rows:
            if row.name in gone:
                self._schedule_repair(row, gone[row.name])
            elif row.status == Status.UNAVAILABLE.value:
                # A repair failed before, and what was gone is back (made by hand, or the
                # bucket is there again): run the same steps again to make it AVAILABLE.
                redo, what = row.progress.get("redo") or [], row.progress.get("repair") or []
                self._schedule_repair(row, [(step, text) for step in redo for text in what])
        if gone:
            self._wake()
        return gone

    def _find_gone(self, rows: list[EnvironmentRow]) -> Gone:
        gone: Gone = defaultdict(list)
        sqs, logs = self._services.aws.client("sqs"), self._services.aws.client("logs")
        queues = _queue_names(sqs, "airflow-celery-")
        groups = _log_group_names(logs, "airflow-")
        for row in rows:
            if "celery_queue" in row.resources:
                name = self._placement.queue_name(row.env_id)
                if name not in queues and not _queue_exists(sqs, name):
                    gone[row.name].append((CeleryQueue.name, f"the Celery queue {name}"))
            for module in row.resources.get("log_groups") or {}:
                group = log_group_name(row.name, module)
                if group not in groups and not _log_group_exists(logs, group):
                    gone[row.name].append((LogGroups.name, f"the log group {group}"))
        self._check_notifications(rows, sqs, gone)
        return dict(gone)

    def _check_notifications(self, rows: list[EnvironmentRow], sqs: Any, gone: Gone) -> None:
        by_bucket: dict[str, list[EnvironmentRow]] = defaultdict(list)
        for row in rows:
            recorded = row.resources.get("dag_events") or {}
            if recorded.get("bucket"):
                by_bucket[recorded["bucket"]].append(row)
        if not by_bucket:
            return
        if not _queue_exists(sqs, DAG_EVENT_QUEUE):
            # Shared by all environments: remade here once, rather than by every one of them.
            try:
                ensure_event_queue(sqs, self._placement.region, self._placement.account_id)
                log.warning("the DAG event queue %s was deleted; made it again", DAG_EVENT_QUEUE)
            except ClientError as err:  # e.g. SQS refuses the name for 60 s: next check
                _repeats.warning(
                    ("event-queue", str(err)),
                    "the DAG event queue %s was deleted and cannot be made again yet: %s",
                    DAG_EVENT_QUEUE,
                    err,
                )
        s3 = self._services.aws.client("s3")
        for bucket, users in sorted(by_bucket.items()):
            try:
                config = s3.get_bucket_notification_configuration(Bucket=bucket)
                present = {q.get("Id") for q in config.get("QueueConfigurations", [])}
            except ClientError as err:
                if error_code(err) != "NoSuchBucket":
                    raise
                present = set()  # the repair will fail and say why
            for row in users:
                entry = row.resources["dag_events"].get("id")
                if entry not in present:
                    what = f"the notification entry {entry} of {bucket}"
                    gone[row.name].append((DagEvents.name, what))

    def _schedule_repair(self, row: EnvironmentRow, missing: list[tuple[str, str]]) -> None:
        """Hand the reconciler a new generation that runs only the steps that remake what is
        gone. A compare-and-set: if the environment changed since it was read, it is left
        for the next check."""
        redo = {step for step, _ in missing}
        what = list(dict.fromkeys(description for _, description in missing))
        done = [name for name in self._step_names if name not in redo]
        try:
            with self._db.transaction() as session:
                values = {
                    **store.next_generation(row),
                    "progress": {"done": done, "repair": what, "redo": sorted(redo)},
                }
                store.compare_and_set(session, row.name, row.row_version, **values)
        except ConcurrentModification:
            return
        # An environment that stays UNAVAILABLE is tried again on every check: say so once.
        _repeats.warning(
            ("repair", row.name, tuple(what)),
            "environment %s: %s deleted outside Airdock; making it again",
            row.name,
            ", ".join(what),
        )


def _eligible(row: EnvironmentRow) -> bool:
    """At rest, not being worked on, and (if UNAVAILABLE) made so by a failed repair."""
    if row.lease_owner is not None and row.lease_expires > time.time():
        return False
    if row.generation != row.observed_generation:
        return False
    return row.status != Status.UNAVAILABLE.value or bool(row.progress.get("repair"))


def _queue_names(sqs: Any, prefix: str) -> set[str]:
    names: set[str] = set()
    pages = sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix, MaxResults=1000)
    for page in pages:
        names.update(url.rsplit("/", 1)[-1] for url in page.get("QueueUrls", []))
    return names


def _queue_exists(sqs: Any, name: str) -> bool:
    try:
        sqs.get_queue_url(QueueName=name)
    except ClientError as err:
        if error_code(err) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return False
        raise
    return True


def _log_group_names(logs: Any, prefix: str) -> set[str]:
    names: set[str] = set()
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
        names.update(group["logGroupName"] for group in page.get("logGroups", []))
    return names


def _log_group_exists(logs: Any, name: str) -> bool:
    found = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    return any(group["logGroupName"] == name for group in found)
