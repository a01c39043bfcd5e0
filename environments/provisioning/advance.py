"""How one leased environment moves: the steps run in order, each outcome decides what next.

Every failure ends in a definite status. A step that finishes is recorded at once (so a crash
resumes after it) and resets the attempt count (so every step has a budget of its own). A
retry waits for the backoff or for the delay the step asked for; a spent budget or a permanent
failure ends the transition in its failure status with LastUpdate.Error: CREATE_FAILED,
ROLLING_BACK then UPDATE_FAILED (UNAVAILABLE when the rollback fails too). A delete never gives
up: it stays DELETING with the reason and is tried again at a slow pace. A repair (something
deleted from outside, see drift) runs only the steps that remake what is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from environments import store
from environments.errors import ConcurrentModification
from environments.host import HostServices
from environments.lifecycle import Event, Status, next_status
from environments.naming import Placement
from environments.plumbing.repeats import RepeatLimiter
from environments.provisioning.retries import RetryPolicy, run_step
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
_repeats = RepeatLimiter(log, interval=300.0)


class Advancing:
    """The part of the reconciler that works on one environment it holds the lease of."""

    owner: str
    _db: Store
    _placement: Placement
    _services: HostServices
    _steps: Sequence[Step]
    _retry_policy: RetryPolicy

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
                    if row.progress.get("repair"):
                        self._repair(row)
                    else:
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
            exclusive=self._db.exclusive,
        )

    def _run_steps(
        self, row: EnvironmentRow, ctx: StepContext, *, teardown: bool
    ) -> tuple[Step | None, Outcome, int]:
        """Run the steps not yet recorded as finished, recording each as it finishes.

        Returns the step that stopped the run (None when all finished), its outcome, and how
        many attempts that step has already used: a step that finishes resets the count, so
        every step gets a budget of its own.
        """
        key = "removed" if teardown else "done"
        finished = set(row.progress.get(key, []))
        attempts = row.attempts
        for step in reversed(self._steps) if teardown else self._steps:
            if step.name in finished:
                continue
            if teardown:
                outcome = run_step(step.teardown, ctx, f"{step.name} teardown")
            else:
                outcome = run_step(step.ensure, ctx, step.name)
            if not isinstance(outcome, Done):
                return step, outcome, attempts
            finished.add(step.name)
            attempts = 0
            progress = {**row.progress, key: sorted(finished)}
            self._write(row, resources=ctx.resources, progress=progress, attempts=0)
        return None, DONE, attempts

    def _converge(self, row: EnvironmentRow) -> bool:
        """Run the remaining ensure steps; True if the status moved and we should look again."""
        ctx = self._context(row)
        step, outcome, used = self._run_steps(row, ctx, teardown=False)
        if isinstance(outcome, Done):
            self._succeed(row, ctx)
            return True
        if isinstance(outcome, RetryLater):
            budget = self._retry_policy.budget(step)
            if used + 1 < budget:
                self._retry(row, ctx, used + 1, outcome.reason, outcome.delay)
                return False
            outcome = Failed("INTERNAL_ERROR", f"Gave up after {budget} attempts: {outcome.reason}")
        self._fail(row, ctx, outcome)
        return True

    def _settle(self, row: EnvironmentRow, ctx: StepContext, event: Event, **values: Any) -> None:
        """Take the transition `event` names, with a fresh retry budget for the next status."""
        status = next_status(Status(row.status), event)
        self._write(
            row,
            status=status.value,
            resources=ctx.resources,
            attempts=0,
            next_attempt_at=0.0,
            **values,
        )

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
            # Keep the error that started the rollback, and say that restoring failed too.
            first = (row.last_update.get("Error") or {}).get("ErrorMessage", "")
            message = f"{first} Rolling back failed: {failure.message}".strip()
            error = {"ErrorCode": failure.code, "ErrorMessage": message[:1024]}
            last_update = {**row.last_update, "Status": "FAILED", "Error": error}
            self._settle(
                row,
                ctx,
                Event.ROLLBACK_FAILED,
                observed_generation=row.generation,
                last_update=last_update,
            )
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
        step, outcome, used = self._run_steps(row, ctx, teardown=True)
        if isinstance(outcome, Done):
            with self._db.transaction() as session:
                store.reconciler_delete(session, row.name, self.owner, row.generation)
            log.info("environment %s deleted", row.name)
            return
        if isinstance(outcome, RetryLater) and used + 1 < self._retry_policy.budget(step):
            self._retry(row, ctx, used + 1, outcome.reason, outcome.delay)
            return
        reason = outcome.reason if isinstance(outcome, RetryLater) else outcome.message
        code = outcome.code if isinstance(outcome, Failed) else "INTERNAL_ERROR"
        self._stuck_deleting(row, ctx, used + 1, code, reason)

    def _stuck_deleting(
        self, row: EnvironmentRow, ctx: StepContext, attempts: int, code: str, reason: str
    ) -> None:
        """A teardown step spent its budget or failed for good. The environment stays DELETING
        (nothing it made may leak), says why in LastUpdate.Error, and is tried again at a slow
        pace: it goes once the cause is fixed, with no further request needed."""
        pace = self._retry_policy.stuck_delete_pace
        message = f"Deleting is stuck and is retried every {pace:.0f} s: {reason}"
        error = {"ErrorCode": code, "ErrorMessage": message[:1024]}
        _repeats.warning(("stuck", row.name), "environment %s: %s", row.name, message)
        self._write(
            row,
            resources=ctx.resources,
            attempts=attempts,
            next_attempt_at=time.time() + pace,
            last_update={**row.last_update, "Status": "FAILED", "Error": error},
        )

    def _repair(self, row: EnvironmentRow) -> None:
        """Run the steps a drift check left undone, to remake what was deleted from outside;
        the status stays (or becomes AVAILABLE again), or UNAVAILABLE when it cannot be done."""
        ctx = self._context(row)
        step, outcome, used = self._run_steps(row, ctx, teardown=False)
        what = ", ".join(row.progress["repair"])
        if isinstance(outcome, Done):
            values: dict[str, Any] = {}
            if Status(row.status) is Status.UNAVAILABLE:
                last_update = {**row.last_update, "Status": "SUCCESS"}
                last_update.pop("Error", None)
                values["last_update"] = last_update
            done = [s.name for s in self._steps]
            self._settle(
                row,
                ctx,
                Event.REPAIRED,
                observed_generation=row.generation,
                progress={"done": done},
                **values,
            )
            log.info(
                "environment %s: made again what was deleted outside Airdock: %s", row.name, what
            )
            return
        if isinstance(outcome, RetryLater) and used + 1 < self._retry_policy.budget(step):
            self._retry(row, ctx, used + 1, outcome.reason, outcome.delay)
            return
        self._repair_failed(
            row, ctx, outcome.reason if isinstance(outcome, RetryLater) else outcome.message
        )

    def _repair_failed(self, row: EnvironmentRow, ctx: StepContext, reason: str) -> None:
        what = ", ".join(row.progress["repair"])
        message = f"Deleted outside Airdock and not made again ({what}): {reason}"
        error = {"ErrorCode": "INTERNAL_ERROR", "ErrorMessage": message[:1024]}
        _repeats.warning(
            ("unavailable", row.name, message),
            "environment %s is UNAVAILABLE: %s",
            row.name,
            message,
        )
        # The progress keeps the repair, so later drift checks try again.
        self._settle(
            row,
            ctx,
            Event.REPAIR_FAILED,
            observed_generation=row.generation,
            last_update={**row.last_update, "Status": "FAILED", "Error": error},
        )

    def _retry(
        self,
        row: EnvironmentRow,
        ctx: StepContext,
        attempts: int,
        reason: str,
        asked: float | None = None,
    ) -> None:
        delay = self._retry_policy.delay(attempts, asked)
        log.info("environment %s: retry %d in %.1fs (%s)", row.name, attempts, delay, reason)
        self._write(
            row, resources=ctx.resources, attempts=attempts, next_attempt_at=time.time() + delay
        )

    def _defer(self, name: str, reason: str) -> None:
        """An exception outside any step: it counts against the budget like a step's would."""
        try:
            with self._db.transaction() as session:
                row = store.get_environment(session, name)
            if row is None or row.lease_owner != self.owner:
                return
            ctx = self._context(row)
            attempts = row.attempts + 1
            if attempts < self._retry_policy.max_attempts:
                self._retry(row, ctx, attempts, reason)
            elif Status(row.status) is Status.DELETING:
                self._stuck_deleting(row, ctx, attempts, "INTERNAL_ERROR", reason)
            elif Status(row.status) in (Status.CREATING, Status.UPDATING, Status.ROLLING_BACK):
                failure = Failed("INTERNAL_ERROR", f"Gave up after {attempts} attempts: {reason}")
                self._fail(row, ctx, failure)
            elif row.progress.get("repair"):
                self._repair_failed(row, ctx, reason)
            else:
                self._write(row, observed_generation=row.generation, attempts=0)
        except ConcurrentModification:
            pass  # changed meanwhile: the next pass looks at it afresh
        except Exception as err:
            _repeats.error(
                ("defer", name, repr(err)),
                "could not record the failure of %s",
                name,
                exc_info=True,
            )

    def _write(self, row: EnvironmentRow, **values: Any) -> None:
        with self._db.transaction() as session:
            store.reconciler_write(session, row.name, self.owner, row.generation, **values)
