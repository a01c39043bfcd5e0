"""Race-free edits of a bucket's notification configuration, which environments share.

S3 can only replace that configuration whole, with no version to compare against, so two
environments on one bucket changing it at once would each drop the other's entry. Every
read-modify-write therefore runs under a lock named after the bucket, held in the store
(`ctx.exclusive`), which every thread, process and replica shares.

Within a process, edits waiting for the same bucket are combined: whoever gets to go applies
all that are pending in one read and one write. Two hundred environments created at once then
cost a handful of round trips instead of two hundred, each re-reading a growing configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from environments.provisioning.step import StepContext


@dataclass
class _Edit:
    entry_id: str
    entry: dict[str, Any] | None  # None: remove the entry
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


_guard = threading.Lock()
_pending: dict[Hashable, list[_Edit]] = {}
_turns: dict[Hashable, threading.Lock] = {}


def lock_name(bucket: str) -> str:
    return f"s3-notifications:{bucket}"


def put_entry(ctx: StepContext, s3: Any, bucket: str, entry: dict[str, Any]) -> None:
    """Add `entry` to the bucket's queue notifications, replacing one with the same Id."""
    _edit(ctx, s3, bucket, _Edit(entry["Id"], entry))


def remove_entry(ctx: StepContext, s3: Any, bucket: str, entry_id: str) -> None:
    """Remove the queue notification with Id `entry_id`, if there is one."""
    _edit(ctx, s3, bucket, _Edit(entry_id, None))


def _edit(ctx: StepContext, s3: Any, bucket: str, edit: _Edit) -> None:
    # Edits combine only when they would take the same store lock.
    key = (ctx.exclusive, bucket)
    with _guard:
        _pending.setdefault(key, []).append(edit)
        turn = _turns.setdefault(key, threading.Lock())
    with turn:
        if not edit.done.is_set():  # nobody took it along yet: take everything pending
            with _guard:
                batch = _pending.pop(key, [])
            _apply_batch(ctx.exclusive, s3, bucket, batch)
    if edit.error is not None:
        raise edit.error


def _apply_batch(exclusive: Callable[[str], Any], s3: Any, bucket: str, batch: list[_Edit]) -> None:
    try:
        with exclusive(lock_name(bucket)):
            config = s3.get_bucket_notification_configuration(Bucket=bucket)
            config.pop("ResponseMetadata", None)
            config = {k: v for k, v in config.items() if v}
            before = config.get("QueueConfigurations", [])
            queues = list(before)
            for edit in batch:
                queues = [q for q in queues if q.get("Id") != edit.entry_id]
                if edit.entry is not None:
                    queues.append(edit.entry)
            if queues != before:
                if queues:
                    config["QueueConfigurations"] = queues
                else:
                    config.pop("QueueConfigurations", None)
                s3.put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration=config
                )
    except BaseException as err:  # every edit's caller raises it (the taker's is in batch)
        for edit in batch:
            edit.error = err
    finally:
        for edit in batch:
            edit.done.set()
