"""Write lines to a CloudWatch Logs stream, creating the stream on first use."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

# PutLogEvents limits: 10,000 events and 1 MiB per call (26 bytes of overhead per event).
_MAX_EVENTS = 10_000
_MAX_BATCH_BYTES = 1_000_000
_MAX_EVENT_BYTES = 250_000


def put_lines(logs: Any, group: str, stream: str, lines: Iterable[str]) -> int:
    """Append lines as events; returns how many were sent. Missing groups are skipped."""
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        if code == "ResourceNotFoundException":
            return 0
        if code != "ResourceAlreadyExistsException":
            raise
    now = int(time.time() * 1000)
    batch: list[dict[str, Any]] = []
    size = sent = 0
    for line in lines:
        message = line[:_MAX_EVENT_BYTES] or " "
        cost = len(message.encode()) + 26
        if batch and (len(batch) >= _MAX_EVENTS or size + cost > _MAX_BATCH_BYTES):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            sent += len(batch)
            batch, size = [], 0
        batch.append({"timestamp": now, "message": message})
        size += cost
    if batch:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
        sent += len(batch)
    return sent
