"""Keeps every running environment's DAG mirror current, three ways:

- polling: a full incremental pass over each environment every `interval` seconds, spread
  evenly over the interval (the safety net behind the events, so it can be slow);
- S3 event notifications: a listener on Airdock's event queue applies each created or
  removed object within moments of the change;
- on demand: `sync_now(name)`, behind `airdock env sync NAME`.

All three go through DagSyncer, which serialises per workspace with a file lock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from environments import store
from environments.contents.dagsync import DagSyncer, SyncError, SyncReport, dag_prefix
from environments.errors import ValidationException, not_found
from environments.host import HostServices
from environments.lifecycle import Status
from environments.naming import DAG_EVENT_QUEUE, bucket_name
from environments.plumbing.repeats import RepeatLimiter
from environments.store import Store

log = logging.getLogger(__name__)
# A failure that persists (a bucket gone, a limit crossed) would repeat on every pass.
_repeats = RepeatLimiter(log, interval=300.0)

SYNCING = [Status.AVAILABLE.value, Status.UPDATING.value, Status.UPDATE_FAILED.value]
SYNCING += [Status.ROLLING_BACK.value]


class DagSyncService:
    def __init__(
        self,
        db: Store,
        services: HostServices,
        *,
        interval: float = 5.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._services = services
        self._interval = interval
        self._on_change = on_change or (lambda name: None)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        targets = [(self._poll_loop, "dag-sync-poll")]
        if self._services.dag_events:
            targets.append((self._event_loop, "dag-sync-events"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    # --- on demand --------------------------------------------------------------------

    def sync_now(self, name: str) -> SyncReport:
        row = self._db.read_environment(name)
        if row is None:
            raise not_found(name)
        if row.status not in SYNCING:
            raise ValidationException(
                f"Environment {name} is {row.status}; DAGs sync only while it runs."
            )
        report = self._sync(name, row.spec)
        if report.changed:
            self._on_change(name)
        return report

    # --- polling ----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        next_pass = time.monotonic() + self._interval
        while not self._stop.wait(max(0.0, next_pass - time.monotonic())):
            started = time.monotonic()
            next_pass = started + self._interval
            try:
                with self._db.transaction() as session:
                    names = [name for name, _ in store.environments_in(session, SYNCING)]
            except Exception as err:
                _repeats.error(
                    ("list", repr(err)), "listing environments for DAG sync failed", exc_info=True
                )
                continue
            # The pass is spread over the interval, one environment every interval/n seconds:
            # many environments make a steady trickle of listings, never a burst.
            spacing = self._interval / max(len(names), 1)
            for index, name in enumerate(names):
                if self._stop.wait(max(0.0, started + index * spacing - time.monotonic())):
                    return
                self._poll_one(name)

    def _poll_one(self, name: str) -> None:
        try:
            # Read again: the environment may have changed since the pass began.
            row = self._db.read_environment(name)
            if row is None or row.status not in SYNCING:
                return
            if self._sync(name, row.spec).changed:
                self._on_change(name)
        except (SyncError, ClientError, BotoCoreError) as err:
            _repeats.warning((name, str(err)), "DAG sync of %s failed: %s", name, err)
        except Exception as err:  # the loop must outlive one environment's trouble
            _repeats.error((name, repr(err)), "DAG sync of %s failed", name, exc_info=True)

    def _sync(self, name: str, spec: dict[str, Any]) -> SyncReport:
        workspace = self._services.workspace(name)
        if not workspace.root.exists():
            return SyncReport()  # not provisioned on this host (yet)
        s3 = self._services.source_reader(spec).client("s3")
        return DagSyncer(workspace).sync(
            s3, bucket_name(spec["SourceBucketArn"]), spec["DagS3Path"]
        )

    # --- S3 events --------------------------------------------------------------------

    def _event_loop(self) -> None:
        sqs = self._services.aws.client("sqs")
        url: str | None = None
        while not self._stop.is_set():
            try:
                if url is None:
                    url = sqs.get_queue_url(QueueName=DAG_EVENT_QUEUE)["QueueUrl"]
                answer = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except (ClientError, BotoCoreError):
                url = None  # no queue yet (no environment asked for events): look again later
                self._stop.wait(1.0)
                continue
            for message in answer.get("Messages", []):
                try:
                    self._handle_event(json.loads(message["Body"]))
                except Exception as err:
                    _repeats.error(
                        ("event", repr(err)), "could not apply a DAG event", exc_info=True
                    )
                try:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                except (ClientError, BotoCoreError) as err:
                    _repeats.warning(
                        ("delete", str(err)), "could not delete a DAG event message: %s", err
                    )

    def _handle_event(self, body: dict[str, Any]) -> None:
        records = body.get("Records") or []
        if not records:
            return  # s3:TestEvent and the like
        with self._db.transaction() as session:
            running = store.environments_in(session, SYNCING)
        for record in records:
            bucket = record.get("s3", {}).get("bucket", {}).get("name")
            key = unquote_plus(record.get("s3", {}).get("object", {}).get("key", ""))
            created = str(record.get("eventName", "")).startswith("ObjectCreated")
            for name, spec in running:
                if bucket_name(spec["SourceBucketArn"]) != bucket:
                    continue
                if not key.startswith(dag_prefix(spec["DagS3Path"])):
                    continue
                workspace = self._services.workspace(name)
                if not workspace.root.exists():
                    continue
                syncer = DagSyncer(workspace)
                s3 = self._services.source_reader(spec).client("s3")
                if syncer.apply_event(s3, bucket, spec["DagS3Path"], key, created):
                    self._on_change(name)
