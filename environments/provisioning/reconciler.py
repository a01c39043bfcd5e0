"""The reconciler: drives environments from their transitional status to a resting one.

Any number of replicas may run it against one store. Each environment is worked on only
under a lease row (owner + expiry), renewed by a heartbeat while the work runs. Each finished
step is recorded before the next starts, so a replica killed at any point leaves work that
the next claimant resumes where it stopped.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from environments import store
from environments.errors import ConcurrentModification
from environments.host import HostServices
from environments.lifecycle import Event, Status, next_status
from environments.naming import Placement
from environments.provisioning.aws_outcomes import outcome_for
from environments.provisioning.step import (
    DONE,
    Done,
    Failed,
    Outcome,
    RetryLater,
    Step,
    StepContext,
)
from environments.store import EnvironmentRow, Store

log = logging.getLogger(__name__)

LEASE_TTL_SECONDS = 15.0
MAX_ATTEMPTS = 12  # with the capped backoff below: roughly three minutes of retrying
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped (attempt counts from 1)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def _run(call: Callable[[StepContext], Outcome], ctx: StepContext, label: str) -> Outcome:
    """Run a step; an AWS error it did not handle itself becomes an outcome, not a crash."""
    try:
        return call(ctx)
    except (ClientError, BotoCoreError) as err:
        return outcome_for(err, label)


class Reconciler:
    def __init__(
        self,
        db: Store,
        placement: Placement,
        steps: Sequence[Step],
        *,
        owner: str,
        services: HostServices,
        workers: int = 8,
        poll_interval: float = 0.5,
        lease_ttl: float = LEASE_TTL_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._db = db
        self._placement = placement
        self._steps = list(steps)
        self.owner = owner
        self._workers = workers
        self._poll_interval = poll_interval
        self._services = services
        self._lease_ttl = lease_ttl
        self._max_attempts = max_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._active: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []

    # --- running ----------------------------------------------------------------------

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="reconcile")
        for target, name in ((self._loop, "reconciler"), (self._heartbeat, "lease-heartbeat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._db.transaction() as session:
            for name in list(self._active):
                store.release_lease(session, name, self.owner)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch()
            except Exception:  # the loop must survive a database hiccup
                log.exception("reconciler pass failed")
            self._wake.wait(self._poll_interval)
            self._wake.clear()

    def _dispatch(self) -> None:
        assert self._pool is not None
        with self._lock:
            for name in [n for n, f in self._active.items() if f.done()]:
                del self._active[name]
            free = self._workers - len(self._active)
        if free <= 0:
            return
        now = time.time()
        with self._db.transaction() as session:
            candidates = store.claimable_names(session, now, free + len(self._active))
        for name in candidates:
            if free <= 0 or self._stop.is_set():
                break
            with self._lock:
                if name in self._active:
                    continue
            with self._db.transaction() as session:
                claimed = store.try_lease(session, name, self.owner, now, self._lease_ttl)
            if not claimed:
                continue
            with self._lock:
                self._active[name] = self._pool.submit(self._work, name)
            free -= 1

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._lease_ttl / 3):
            with self._lock:
                names = [n for n, f in self._active.items() if not f.done()]
            if not names:
                continue
            try:
                with self._db.transaction() as session:
                    for name in names:
                        store.renew_lease(session, name, self.owner, time.time(), self._lease_ttl)
            except Exception:
                log.exception("lease renewal failed")

    def _work(self, name: str) -> None:
        try:
            self.reconcile(name)
        except ConcurrentModification:
            log.info(
                "environment %s changed under the reconciler; it will be picked up again", name
            )
        except Exception:
            log.exception("reconciling %s failed unexpectedly", name)
            self._defer(name, "internal error")
        finally:
            with self._db.transaction() as session:
                store.release_lease(session, name, self.owner)
            self._wake.set()

    # --- one environment --------------------------------------------------------------

    def run_until_idle(self, timeout: float = 30.0) -> None:
        """Reconcile everything claimable in this thread until nothing is left (for tools)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._db.transaction() as session:
                names = store.claimable_names(session, time.time(), 100)
            if not names:
                return
            for name in names:
                with self._db.transaction() as session:
                    claimed = store.try_lease(session, name, self.owner, time.time(), 60)
                if claimed:
                    self._work(name)
            time.sleep(0.05)

    def reconcile(self, name: str) -> None:
        """Advance one leased environment as far as it will go right now."""
        while True:
            with self._db.transaction() as session:
                row = store.get_environment(session, name)
            if row is None or row.lease_owner != self.owner:
                return
            status = Status(row.status)
            if status is Status.DELETING:
                self._delete(row)
                return
            if status not in (Status.CREATING, Status.UPDATING, Status.ROLLING_BACK):
                if row.generation > row.observed_generation:
                    self._write(row, observed_generation=row.generation)
                return
            if not self._converge(row):
                return

    def _context(self, row: EnvironmentRow) -> StepContext:
        return StepContext(
            name=row.name,
            arn=row.arn,
            env_id=row.env_id,
            spec=row.spec,
            tags=dict(row.tags),
            placement=self._placement,
            resources=dict(row.resources),
            applied_spec=row.applied_spec,
            services=self._services,
        )

    def _run_steps(self, row: EnvironmentRow, ctx: StepContext, *, teardown: bool) -> Outcome:
        """Run the steps not yet recorded as finished, recording each as it finishes; the
        first outcome that is not Done, or DONE when every step has finished."""
        key = "removed" if teardown else "done"
        finished = set(row.progress.get(key, []))
        for step in reversed(self._steps) if teardown else self._steps:
            if step.name in finished:
                continue
            if teardown:
                outcome = _run(step.teardown, ctx, f"{step.name} teardown")
            else:
                outcome = _run(step.ensure, ctx, step.name)
            if not isinstance(outcome, Done):
                return outcome
            finished.add(step.name)
            self._write(row, resources=ctx.resources, progress={key: sorted(finished)})
        return DONE

    def _converge(self, row: EnvironmentRow) -> bool:
        """Run the remaining ensure steps; True if the status moved and we should look again."""
        ctx = self._context(row)
        outcome = self._run_steps(row, ctx, teardown=False)
        if isinstance(outcome, Done):
            self._succeed(row, ctx)
            return True
        if isinstance(outcome, RetryLater):
            if row.attempts + 1 < self._max_attempts:
                self._retry(row, ctx, outcome.reason)
                return False
            outcome = Failed("INTERNAL_ERROR", f"Gave up after retries: {outcome.reason}")
        self._fail(row, ctx, outcome)
        return True

    def _settle(self, row: EnvironmentRow, ctx: StepContext, event: Event, **values: Any) -> None:
        """Take the transition `event` names, with a fresh retry budget for the next status."""
        status = next_status(Status(row.status), event)
        self._write(row, status=status.value, resources=ctx.resources, attempts=0, **values)

    def _succeed(self, row: EnvironmentRow, ctx: StepContext) -> None:
        converged = {"observed_generation": row.generation, "applied_spec": row.spec}
        if Status(row.status) is Status.ROLLING_BACK:
            self._settle(row, ctx, Event.ROLLED_BACK, **converged)
            return
        last_update = {**row.last_update, "Status": "SUCCESS"}
        last_update.pop("Error", None)
        last_update.setdefault("CreatedAt", time.time())
        self._settle(row, ctx, Event.CONVERGED, last_update=last_update, **converged)
        log.info("environment %s is %s", row.name, Status.AVAILABLE.value)

    def _fail(self, row: EnvironmentRow, ctx: StepContext, failure: Failed) -> None:
        status = Status(row.status)
        error = {"ErrorCode": failure.code, "ErrorMessage": failure.message[:1024]}
        log.warning("environment %s failed in %s: %s", row.name, status.value, failure.message)
        if status is Status.ROLLING_BACK:
            self._settle(row, ctx, Event.ROLLBACK_FAILED, observed_generation=row.generation)
            return
        last_update = {**row.last_update, "Status": "FAILED", "Error": error}
        if status is Status.UPDATING and row.applied_spec is not None:
            # Put the last good configuration back; the next pass converges on it.
            self._write(
                row,
                status=next_status(status, Event.FAILED).value,
                spec=row.applied_spec,
                resources=ctx.resources,
                last_update=last_update,
                **store.next_generation(row),
            )
            return
        event = Event.FAILED_WITHOUT_ROLLBACK if status is Status.UPDATING else Event.FAILED
        self._settle(row, ctx, event, observed_generation=row.generation, last_update=last_update)

    def _delete(self, row: EnvironmentRow) -> None:
        ctx = self._context(row)
        outcome = self._run_steps(row, ctx, teardown=True)
        if not isinstance(outcome, Done):
            # Deletion never gives up (a finalizer): it keeps retrying with capped backoff.
            reason = outcome.reason if isinstance(outcome, RetryLater) else outcome.message
            self._retry(row, ctx, reason)
            return
        with self._db.transaction() as session:
            store.reconciler_delete(session, row.name, self.owner, row.generation)
        log.info("environment %s deleted", row.name)

    def _retry(self, row: EnvironmentRow, ctx: StepContext, reason: str) -> None:
        attempts = row.attempts + 1
        delay = backoff_delay(attempts)
        log.info("environment %s: retry %d in %.1fs (%s)", row.name, attempts, delay, reason)
        self._write(
            row, resources=ctx.resources, attempts=attempts, next_attempt_at=time.time() + delay
        )

    def _defer(self, name: str, reason: str) -> None:
        with self._db.transaction() as session:
            row = store.get_environment(session, name)
        if row is not None and row.lease_owner == self.owner:
            self._retry(row, self._context(row), reason)

    def _write(self, row: EnvironmentRow, **values: Any) -> None:
        with self._db.transaction() as session:
            store.reconciler_write(session, row.name, self.owner, row.generation, **values)
