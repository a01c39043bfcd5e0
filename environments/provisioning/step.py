"""The contract every provisioning step keeps.

Both `ensure` and `teardown` are idempotent: they look their resources up by deterministic
name or tag before creating or deleting anything, so the reconciler may run them again after
a crash at any point. They report an Outcome value instead of raising, so temporary and
permanent failures are handled the same way everywhere; an exception that escapes anyway is
a retry against the step's budget (provisioning.retries).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from environments.host import HostServices
from environments.naming import Placement


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class RetryLater:
    """A transient failure (throttling, 5xx, not-yet-consistent); try again after a backoff,
    or after `delay` seconds when the step knows better (e.g. a resource still being made)."""

    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent failure, reported in LastUpdate.Error with an MWAA-style code."""

    code: str
    message: str


Outcome = Done | RetryLater | Failed
DONE = Done()

# Every AWS resource Airdock creates carries this tag with the environment ARN as its value:
# it is how steps find their own resources again and how nothing of the user's is touched.
OWNER_TAG = "airdock:environment"


_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@contextmanager
def local_exclusive(name: str) -> Iterator[None]:
    """A lock by name within this process, for contexts made without a store (tools, tests);
    the reconciler gives its steps the store's, which also holds across processes."""
    with _local_locks_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    with lock:
        yield


@dataclass
class StepContext:
    """What a step may read, and `resources`, the one thing it may write (its outputs)."""

    name: str
    arn: str
    env_id: str
    spec: dict[str, Any]
    tags: dict[str, str]
    placement: Placement
    # What the host provides: AWS clients, workspaces, the package cache.
    services: HostServices
    resources: dict[str, Any] = field(default_factory=dict)
    # The last configuration that converged (None before the first success).
    applied_spec: dict[str, Any] | None = None
    # Serializes a read-modify-write of something environments share (a bucket's notification
    # configuration) between every thread, process and replica: `with ctx.exclusive(name):`.
    exclusive: Callable[[str], AbstractContextManager[None]] = local_exclusive


class Step(Protocol):
    """A step may also set `max_attempts`, its own retry budget (see provisioning.retries)."""

    name: str

    def ensure(self, ctx: StepContext) -> Outcome: ...

    def teardown(self, ctx: StepContext) -> Outcome: ...
