"""The reconciler with scripted steps: convergence, retries, failures, rollback, resume."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from environments import store
from environments.aws.clients import AwsClients, AwsTarget
from environments.host import HostServices
from environments.naming import Placement
from environments.provisioning.reconciler import Reconciler
from environments.provisioning.retries import RetryPolicy
from environments.provisioning.step import DONE, Failed, Outcome, RetryLater, StepContext
from environments.service import EnvironmentService
from environments.store import Store
from tests.conftest import create_params
from tests.waiting import wait_until

PLACE = Placement(account_id="123456789012", region="us-east-1")


class ScriptedStep:
    """A step whose outcomes are given in advance; it records every call it gets."""

    def __init__(self, name: str, outcomes: list[Outcome] | None = None) -> None:
        self.name = name
        self.outcomes = list(outcomes or [])
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def ensure(self, ctx: StepContext) -> Outcome:
        with self.lock:
            self.calls.append(f"ensure:{ctx.name}:{ctx.spec.get('MaxWorkers')}")
            outcome = self.outcomes.pop(0) if self.outcomes else DONE
        if isinstance(outcome, Failed) and outcome.code == "ONLY_FOR_SEVEN":
            return outcome if ctx.spec.get("MaxWorkers") == 7 else DONE
        if outcome == DONE:
            ctx.resources[self.name] = {"made": True}
        return outcome

    def teardown(self, ctx: StepContext) -> Outcome:
        with self.lock:
            self.calls.append(f"teardown:{ctx.name}")
        ctx.resources.pop(self.name, None)
        return DONE


@pytest.fixture
def db(db_url: str):
    made = Store(db_url)
    made.create_schema()
    yield made
    made.dispose()


# Scripted steps never touch AWS; clients are made lazily, so none is ever created here.
HOST = HostServices(aws=AwsClients(AwsTarget(region=PLACE.region)))


def _reconciler(db: Store, steps, owner: str = "r1", **kwargs) -> Reconciler:
    return Reconciler(db, PLACE, steps, owner=owner, services=HOST, poll_interval=0.02, **kwargs)


def _status(service: EnvironmentService, name: str) -> str:
    return service.get(name)["Status"]


def test_create_update_delete_converge(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("one")
    reconciler = _reconciler(db, [step])
    service.create("e1", create_params())
    reconciler.run_until_idle()
    env = service.get("e1")
    assert env["Status"] == "AVAILABLE" and env["LastUpdate"]["Status"] == "SUCCESS"
    service.update("e1", {"MaxWorkers": 3})
    assert _status(service, "e1") == "UPDATING"
    reconciler.run_until_idle()
    assert service.get("e1")["MaxWorkers"] == 3
    service.delete("e1")
    reconciler.run_until_idle()
    assert service.list(None, None)[0] == []
    assert step.calls[-1] == "teardown:e1"


def test_transient_failures_are_retried_with_backoff(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("flaky", [RetryLater("throttled"), RetryLater("throttled")])
    reconciler = _reconciler(db, [step], retry=RetryPolicy(backoff_base=0.01))
    service.create("flaky", create_params())
    reconciler.run_until_idle()
    assert _status(service, "flaky") == "AVAILABLE"
    assert len(step.calls) == 3


def test_retries_are_bounded(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("stuck", [RetryLater("503")] * 20)
    reconciler = _reconciler(db, [step], retry=RetryPolicy(max_attempts=4, backoff_base=0.001))
    service.create("stuck", create_params())
    reconciler.run_until_idle()
    env = service.get("stuck")
    assert env["Status"] == "CREATE_FAILED"
    assert "503" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert len(step.calls) == 4


def test_permanent_failure_on_create(db):
    service = EnvironmentService(db, PLACE)
    reconciler = _reconciler(db, [ScriptedStep("bad", [Failed("INCORRECT_CONFIGURATION", "no")])])
    service.create("bad", create_params())
    reconciler.run_until_idle()
    env = service.get("bad")
    assert env["Status"] == "CREATE_FAILED"
    assert env["LastUpdate"]["Error"] == {
        "ErrorCode": "INCORRECT_CONFIGURATION",
        "ErrorMessage": "no",
    }
    with pytest.raises(Exception, match="CREATE_FAILED status cannot be updated"):
        service.update("bad", {"MaxWorkers": 2})
    service.delete("bad")
    reconciler.run_until_idle()
    assert service.list(None, None)[0] == []


def test_failed_update_rolls_back_to_the_last_good_spec(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("picky", [DONE, Failed("INCORRECT_CONFIGURATION", "seven is bad")])
    reconciler = _reconciler(db, [step])
    service.create("rb", create_params(MaxWorkers=4))
    reconciler.run_until_idle()
    service.update("rb", {"MaxWorkers": 7})
    reconciler.run_until_idle()
    env = service.get("rb")
    assert env["Status"] == "UPDATE_FAILED"
    assert env["MaxWorkers"] == 4
    assert env["LastUpdate"]["Status"] == "FAILED"
    assert "seven" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert step.calls == ["ensure:rb:4", "ensure:rb:7", "ensure:rb:4"]
    service.update("rb", {"MaxWorkers": 5})  # UPDATE_FAILED environments stay updatable
    reconciler.run_until_idle()
    assert _status(service, "rb") == "AVAILABLE"


def test_failed_update_with_nothing_to_restore_ends_update_failed(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("picky", [DONE, Failed("INCORRECT_CONFIGURATION", "seven is bad")])
    reconciler = _reconciler(db, [step])
    service.create("fresh", create_params())
    reconciler.run_until_idle()
    service.update("fresh", {"MaxWorkers": 7})
    with db.transaction() as session:  # as if no configuration had ever converged
        session.get(store.EnvironmentRow, "fresh").applied_spec = None
    reconciler.run_until_idle()
    env = service.get("fresh")
    assert env["Status"] == "UPDATE_FAILED"  # never CREATE_FAILED for a failed update
    assert env["LastUpdate"]["Error"]["ErrorMessage"] == "seven is bad"


def test_finished_steps_are_not_redone_after_a_crash(db):
    service = EnvironmentService(db, PLACE)
    first, second = ScriptedStep("first"), ScriptedStep("second", [RetryLater("later")])
    reconciler = _reconciler(db, [first, second])
    service.create("resume", create_params())
    with db.transaction() as session:
        assert store.try_lease(session, "resume", "r1", time.time(), 60)
    reconciler.reconcile("resume")  # first done, second asks to retry: progress is stored
    with db.transaction() as session:
        row = store.get_environment(session, "resume")
        assert row.progress == {"done": ["first"]}
        store.compare_and_set(session, "resume", row.row_version, next_attempt_at=0.0)
        store.release_lease(session, "resume", "r1")
    # A different replica (a restart) picks it up and runs only what is left.
    _reconciler(db, [first, second], owner="r2").run_until_idle()
    assert first.calls == ["ensure:resume:10"]
    assert second.calls == ["ensure:resume:10", "ensure:resume:10"]
    assert _status(service, "resume") == "AVAILABLE"


def test_replicas_never_work_one_environment_at_once(db):
    service = EnvironmentService(db, PLACE)
    active: Counter[str] = Counter()
    overlaps: list[str] = []
    guard = threading.Lock()

    class SlowStep:
        name = "slow"

        def ensure(self, ctx: StepContext) -> Outcome:
            with guard:
                active[ctx.name] += 1
                if active[ctx.name] > 1:
                    overlaps.append(ctx.name)
            # Hold the environment for a while, so that a second replica working it at the same
            # time would be seen.
            time.sleep(0.05)
            with guard:
                active[ctx.name] -= 1
            return DONE

        def teardown(self, ctx: StepContext) -> Outcome:
            return DONE

    names = [f"r{i}" for i in range(12)]
    for name in names:
        service.create(name, create_params())
    replicas = [_reconciler(db, [SlowStep()], owner=f"replica-{i}", workers=4) for i in range(3)]
    for replica in replicas:
        replica.start()
    try:
        wait_until(
            lambda: all(_status(service, n) == "AVAILABLE" for n in names),
            timeout=30,
            message="every environment to be AVAILABLE",
        )
    finally:
        for replica in replicas:
            replica.stop()
    assert overlaps == []
    assert all(_status(service, n) == "AVAILABLE" for n in names)


class RaisingStep(ScriptedStep):
    """Raises `error` the first `times` times it is asked to ensure (None: every time)."""

    def __init__(self, name: str, error: Exception, times: int | None = None) -> None:
        super().__init__(name)
        self.error, self.times = error, times

    def ensure(self, ctx: StepContext) -> Outcome:
        with self.lock:
            self.calls.append(f"ensure:{ctx.name}")
            if self.times is None or len(self.calls) <= self.times:
                raise self.error
        return DONE


def test_an_exception_in_a_step_counts_against_its_budget(db):
    service = EnvironmentService(db, PLACE)
    step = RaisingStep("buggy", NotADirectoryError(20, "Not a directory", "plugins/a"))
    fast = RetryPolicy(max_attempts=3, backoff_base=0.001)
    service.create("buggy-env", create_params())
    _reconciler(db, [ScriptedStep("first"), step], retry=fast).run_until_idle()
    env = service.get("buggy-env")
    assert env["Status"] == "CREATE_FAILED"
    error = env["LastUpdate"]["Error"]
    assert error["ErrorCode"] == "INTERNAL_ERROR"
    assert "Gave up after 3 attempts" in error["ErrorMessage"]
    assert "NotADirectoryError" in error["ErrorMessage"]
    assert len(step.calls) == 3
    service.delete("buggy-env")  # a failed environment can always be deleted
    _reconciler(db, [ScriptedStep("first"), step], retry=fast).run_until_idle()
    assert service.list(None, None)[0] == []


def test_budgets_are_per_step(db):
    service = EnvironmentService(db, PLACE)
    # Each step fails twice before it works: four failures in all, but never three in a row
    # for one step, so a budget of three per step is enough.
    steps = [RaisingStep("a", RuntimeError("a"), times=2), RaisingStep("b", KeyError("b"), 2)]
    reconciler = _reconciler(db, steps, retry=RetryPolicy(max_attempts=3, backoff_base=0.001))
    service.create("per-step", create_params())
    reconciler.run_until_idle()
    assert _status(service, "per-step") == "AVAILABLE"
    assert [len(s.calls) for s in steps] == [3, 3]


def test_a_step_may_set_its_own_budget(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("patient", [RetryLater("not yet")] * 5)
    step.max_attempts = 6
    reconciler = _reconciler(db, [step], retry=RetryPolicy(max_attempts=2, backoff_base=0.001))
    service.create("patient", create_params())
    reconciler.run_until_idle()
    assert _status(service, "patient") == "AVAILABLE"
    assert len(step.calls) == 6


def test_a_step_may_ask_for_its_delay(db):
    service = EnvironmentService(db, PLACE)
    step = ScriptedStep("waiting", [RetryLater("still being made", delay=120.0)])
    service.create("delayed", create_params())
    before = time.time()
    with db.transaction() as session:
        assert store.try_lease(session, "delayed", "r1", before, 60)
    _reconciler(db, [step]).reconcile("delayed")
    with db.transaction() as session:
        row = store.get_environment(session, "delayed")
    # The backoff alone would have asked for half a second at most.
    assert row.next_attempt_at >= before + 120.0
    assert row.attempts == 1 and row.status == "CREATING"


def test_a_delete_that_keeps_failing_stays_deleting_with_the_reason(db):
    service = EnvironmentService(db, PLACE)

    class StubbornTeardown(ScriptedStep):
        broken = True

        def teardown(self, ctx: StepContext) -> Outcome:
            if self.broken:
                raise PermissionError(13, "Permission denied", "workspace")
            return super().teardown(ctx)

    step = StubbornTeardown("stubborn")
    policy = RetryPolicy(max_attempts=2, backoff_base=0.001, stuck_delete_pace=600)
    reconciler = _reconciler(db, [step], retry=policy)
    service.create("stuck-delete", create_params())
    reconciler.run_until_idle()
    service.delete("stuck-delete")
    before = time.time()
    reconciler.run_until_idle()
    env = service.get("stuck-delete")
    assert env["Status"] == "DELETING"
    assert env["LastUpdate"]["Status"] == "FAILED"
    assert (
        "Deleting is stuck and is retried every 600 s" in env["LastUpdate"]["Error"]["ErrorMessage"]
    )
    assert "PermissionError" in env["LastUpdate"]["Error"]["ErrorMessage"]
    with db.transaction() as session:
        row = store.get_environment(session, "stuck-delete")
        assert row.next_attempt_at >= before + 600
        step.broken = False  # the cause is fixed; pretend the slow retry is due
        store.compare_and_set(session, "stuck-delete", row.row_version, next_attempt_at=0.0)
    reconciler.run_until_idle()
    assert service.list(None, None)[0] == []
