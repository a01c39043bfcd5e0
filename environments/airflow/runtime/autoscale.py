"""How many Celery workers an environment should run, decided as MWAA decides it.

`decide` is a pure function of the fleet's load and what was decided before:

- the count stays between MinWorkers and MaxWorkers (a changed limit applies at once);
- it scales out, at once, when queued plus running tasks exceed the fleet's capacity
  (workers x the class's tasks per worker), to as many workers as that load needs;
- it scales in only after the load has fit in fewer workers for `Policy.spare_for` seconds in a
  row, and never within `Policy.cooldown` seconds of the last change: a burst that comes and goes
  does not make workers come and go (no flapping), and a new worker gets a warm-up.

Which workers leave is the supervisor's choice (idle ones only, through Celery's warm shutdown);
`Autoscaler` keeps the memory between rounds and the last decision for `airdock env status`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Policy:
    # The load must have fit in fewer workers this long before any of them leaves.
    spare_for: float = 20.0
    # No scale-in within this long of the last change in either direction.
    cooldown: float = 30.0


@dataclass(frozen=True)
class FleetLoad:
    workers: int  # workers the fleet has now (starting ones included)
    min_workers: int
    max_workers: int
    concurrency: int  # tasks per worker for the environment class
    queued: int
    running: int

    @property
    def tasks(self) -> int:
        return self.queued + self.running


@dataclass(frozen=True)
class Memory:
    changed_at: float = float("-inf")  # when the count last changed
    spare_since: float | None = None  # since when the load has fit in fewer workers


@dataclass(frozen=True)
class Decision:
    target: int
    reason: str
    memory: Memory

    def changes(self, load: FleetLoad) -> bool:
        return self.target != load.workers


def workers_needed(load: FleetLoad) -> int:
    """Workers for the load, within the limits."""
    wanted = math.ceil(load.tasks / max(load.concurrency, 1))
    return min(max(wanted, load.min_workers), max(load.max_workers, load.min_workers))


def decide(load: FleetLoad, memory: Memory, now: float, policy: Policy = Policy()) -> Decision:
    low, high = load.min_workers, max(load.max_workers, load.min_workers)
    slots = load.workers * load.concurrency
    work = f"{load.queued} queued + {load.running} running"
    if load.workers < low:
        return _change(low, f"below MinWorkers {low}", memory, now)
    if load.workers > high:
        return _change(high, f"above MaxWorkers {high}", memory, now)
    needed = workers_needed(load)
    if needed > load.workers:
        reason = f"{work} tasks exceed {load.workers} x {load.concurrency} slots"
        return _change(needed, reason, memory, now)
    if needed == load.workers:
        at_max = load.tasks > slots and load.workers == high
        reason = f"{work} tasks for {slots} slots" + (" (at MaxWorkers)" if at_max else "")
        return Decision(load.workers, reason, replace(memory, spare_since=None))
    spare_since = memory.spare_since if memory.spare_since is not None else now
    held = replace(memory, spare_since=spare_since)
    fits = f"{work} tasks fit in {needed} worker{'s' if needed != 1 else ''}"
    if now - spare_since < policy.spare_for:
        return Decision(load.workers, f"{fits}; waiting {policy.spare_for:.0f} s to be sure", held)
    if now - memory.changed_at < policy.cooldown:
        return Decision(load.workers, f"{fits}; cooling down after the last change", held)
    return _change(needed, f"{fits} for {policy.spare_for:.0f} s", memory, now)


def _change(target: int, reason: str, memory: Memory, now: float) -> Decision:
    return Decision(target, reason, replace(memory, changed_at=now, spare_since=None))


@dataclass
class Step:
    """One scaling change, for status reports."""

    at: float  # wall-clock time
    workers_from: int
    workers_to: int
    reason: str


class Autoscaler:
    """One environment's scaling memory and its last decisions."""

    def __init__(self, policy: Policy = Policy()) -> None:
        self.policy = policy
        self.memory = Memory()
        self.last: Decision | None = None
        self.last_load: FleetLoad | None = None
        self.last_change: Step | None = None
        self._before = self.memory

    def consider(self, load: FleetLoad, now: float | None = None) -> Decision:
        """The decision for this round; `applied` must follow when it changes the count."""
        decision = decide(load, self.memory, time.monotonic() if now is None else now, self.policy)
        self._before = self.memory
        self.memory = decision.memory
        self.last, self.last_load = decision, load
        return decision

    def applied(self, load: FleetLoad, workers: int) -> None:
        """The supervisor now runs `workers`: fewer leave than decided when not enough were
        idle, and when none could leave the decision is retried next round, no cool-down."""
        if workers == load.workers:
            self.memory = self._before
            if self.last is not None:
                self.last = replace(self.last, reason=f"{self.last.reason}; no worker is idle")
            return
        reason = self.last.reason if self.last else ""
        self.last_change = Step(time.time(), load.workers, workers, reason)

    def report(self) -> dict:
        return {
            "decision": self.last.reason if self.last else None,
            "target": self.last.target if self.last else None,
            "load": asdict(self.last_load) if self.last_load else None,
            "last_change": asdict(self.last_change) if self.last_change else None,
        }
