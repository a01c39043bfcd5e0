"""Every failure ends in a definite state: an exception injected into any step of any transition
(create, update, rollback, delete) never leaves an environment in a transitional status.

The steps are the real plan's, working against an embedded AWS; each is wrapped so that it can
raise before or after doing its real work, a few times or for good. Whatever hypothesis draws,
the environment ends in the status its transition leads to on failure, with LastUpdate.Error
set, and it can then be deleted, leaving nothing behind that Airdock owned.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments import store
from environments.aws.clients import AwsClients, AwsTarget
from environments.emulator.supervisor import EmbeddedAws
from environments.host import HostServices
from environments.naming import Placement
from environments.provisioning.plan import default_steps
from environments.provisioning.reconciler import Reconciler
from environments.provisioning.retries import RetryPolicy
from environments.provisioning.step import OWNER_TAG, Outcome, StepContext
from environments.service import EnvironmentService
from environments.store import Store
from tests.conftest import make_prerequisites

PLACE = Placement(account_id="123456789012", region="us-east-1")
STEP_NAMES = [step.name for step in default_steps()]
BUDGET = 3
# Hardly any backoff, and a stuck delete that would wait an hour: the test moves it on itself.
POLICY = RetryPolicy(
    max_attempts=BUDGET, backoff_base=0.001, backoff_cap=0.001, stuck_delete_pace=3600
)


class InjectedFault(Exception):
    pass


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, "Injected")


ERRORS = {
    "bug": lambda: InjectedFault("injected bug"),
    "key-error": lambda: KeyError("injected-key"),
    "os-error": lambda: NotADirectoryError(20, "Not a directory", "plugins/a"),
    "access-denied": lambda: _client_error("AccessDenied"),
    "throttled": lambda: _client_error("ThrottlingException"),
    "no-connection": lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
}


@dataclass
class Fault:
    step: str
    phase: str  # "ensure" or "teardown"
    error: str
    before: bool  # raise before the real work, or after it (the work done, its outcome lost)
    times: int | None  # None: for good
    only_new_spec: bool = False  # raise only for the update's new configuration
    raised: int = 0

    def hits(self, step: str, phase: str, ctx: StepContext) -> bool:
        if (step, phase) != (self.step, self.phase):
            return False
        if self.only_new_spec and ctx.spec.get("MaxWorkers") != 7:
            return False
        return self.times is None or self.raised < self.times


class FaultyStep:
    """A real step that raises where `faults` say."""

    def __init__(self, inner: Any, faults: list[Fault]) -> None:
        self.inner = inner
        self.name = inner.name
        self.faults = faults

    def _call(self, phase: str, ctx: StepContext) -> Outcome:
        fault = next((f for f in self.faults if f.hits(self.name, phase, ctx)), None)
        if fault is not None and fault.before:
            fault.raised += 1
            raise ERRORS[fault.error]()
        outcome = getattr(self.inner, phase)(ctx)
        if fault is not None:
            fault.raised += 1
            raise ERRORS[fault.error]()
        return outcome

    def ensure(self, ctx: StepContext) -> Outcome:
        return self._call("ensure", ctx)

    def teardown(self, ctx: StepContext) -> Outcome:
        return self._call("teardown", ctx)


class _Aws:
    """What make_prerequisites needs of a server: clients for its AWS."""

    def __init__(self, endpoint: str) -> None:
        self.clients = AwsClients(
            AwsTarget(PLACE.region, endpoint, access_key_id="testing", secret_access_key="t")
        )

    def aws(self, service: str) -> Any:
        return self.clients.client(service)


@dataclass
class World:
    db: Store
    service: EnvironmentService
    host: HostServices
    faults: list[Fault]
    reconciler: Reconciler
    params: dict[str, Any]

    def live_entries(self) -> set[str]:
        """The bucket-notification Ids of the environments that still exist."""
        with self.db.transaction() as session:
            rows = session.query(store.EnvironmentRow).all()
            return {f"airdock-dags-{row.env_id}" for row in rows}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("faults")
    aws = EmbeddedAws(root / "aws")
    aws.start()
    db = Store(f"sqlite:///{root / 'store.db'}")
    db.create_schema()
    faults: list[Fault] = []
    host = HostServices(aws=_Aws(aws.endpoint).clients, data_dir=root / "data", airflow_venvs=False)
    steps = [FaultyStep(step, faults) for step in default_steps()]
    reconciler = Reconciler(db, PLACE, steps, owner="faults", services=host, retry=POLICY)
    params = make_prerequisites(_Aws(aws.endpoint))
    try:
        yield World(db, EnvironmentService(db, PLACE), host, faults, reconciler, params)
    finally:
        db.dispose()
        aws.stop()


_names = (f"inj-{i}" for i in itertools.count())


def _settle(world: World) -> None:
    world.reconciler.run_until_idle(timeout=60)


def _owned(world: World, arn: str) -> list[str]:
    """What Airdock made for `arn` and still exists: log groups, its queue, its bucket entry
    (whose Id ends with the environment id, the last part of its queue's name)."""
    logs, sqs, s3 = (world.host.aws.client(s) for s in ("logs", "sqs", "s3"))
    left = []
    for group in logs.describe_log_groups(logGroupNamePrefix="airflow-inj-")["logGroups"]:
        tags = logs.list_tags_log_group(logGroupName=group["logGroupName"])["tags"]
        if tags.get(OWNER_TAG) == arn:
            left.append(group["logGroupName"])
    for url in sqs.list_queues(QueueNamePrefix="airflow-celery-").get("QueueUrls", []):
        if sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get(OWNER_TAG) == arn:
            left.append(url)
    bucket = world.params["SourceBucketArn"].rsplit(":", 1)[-1]
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    entries = {q["Id"] for q in config.get("QueueConfigurations", [])}
    return left + sorted(entries - world.live_entries())


def _delete_completely(world: World, name: str, arn: str) -> None:
    world.faults.clear()
    world.service.delete(name)
    _settle(world)
    with world.db.transaction() as session:
        assert store.get_environment(session, name) is None
    assert _owned(world, arn) == []


def _create(world: World, name: str) -> str:
    logging = {"SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"}}
    params = {**json.loads(json.dumps(world.params)), "LoggingConfiguration": logging}
    return world.service.create(name, {**params, "MaxWorkers": 4})


def _error_of(env: dict[str, Any]) -> dict[str, str]:
    error = env["LastUpdate"].get("Error")
    assert error and error["ErrorCode"] and error["ErrorMessage"], env["LastUpdate"]
    return error


def _for_good(details: dict[str, Any]) -> bool:
    """Whether the fault fails its step for good: it never stops, or it is an AWS error that
    no retry can fix (an access denial fails at once)."""
    return details["times"] is None or details["error"] == "access-denied"


fault_details = st.fixed_dictionaries(
    {
        "error": st.sampled_from(sorted(ERRORS)),
        "before": st.booleans(),
        "times": st.one_of(st.none(), st.integers(1, BUDGET - 1)),
    }
)

SETTINGS = settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("step", STEP_NAMES)
@SETTINGS
@given(details=fault_details)
def test_a_fault_while_creating_ends_available_or_create_failed(world, step, details):
    name = next(_names)
    world.faults[:] = [Fault(step, "ensure", **details)]
    arn = _create(world, name)
    _settle(world)
    env = world.service.get(name)
    if _for_good(details):
        assert env["Status"] == "CREATE_FAILED"
        _error_of(env)
    else:
        assert env["Status"] == "AVAILABLE", env["LastUpdate"]
    _delete_completely(world, name, arn)


@pytest.mark.parametrize("step", STEP_NAMES)
@SETTINGS
@given(details=fault_details, for_good_everywhere=st.booleans())
def test_a_fault_while_updating_ends_available_update_failed_or_unavailable(
    world, step, details, for_good_everywhere
):
    name = next(_names)
    arn = _create(world, name)
    _settle(world)
    assert world.service.get(name)["Status"] == "AVAILABLE"
    # Either only the new configuration fails (the rollback then works), or the step fails
    # whatever the configuration (the rollback fails too).
    only_new = not (for_good_everywhere and details["times"] is None)
    world.faults[:] = [Fault(step, "ensure", only_new_spec=only_new, **details)]
    world.service.update(name, {"MaxWorkers": 7})
    _settle(world)
    env = world.service.get(name)
    if not _for_good(details):
        assert env["Status"] == "AVAILABLE" and env["MaxWorkers"] == 7, env["LastUpdate"]
    elif only_new:
        assert env["Status"] == "UPDATE_FAILED"
        assert env["MaxWorkers"] == 4  # the last good configuration is back
        _error_of(env)
    else:
        assert env["Status"] == "UNAVAILABLE"
        assert "Rolling back failed" in _error_of(env)["ErrorMessage"]
    _delete_completely(world, name, arn)


@pytest.mark.parametrize("step", STEP_NAMES)
@SETTINGS
@given(details=fault_details)
def test_a_fault_while_deleting_ends_deleted_or_stuck_deleting_with_the_reason(
    world, step, details
):
    name = next(_names)
    arn = _create(world, name)
    _settle(world)
    world.faults[:] = [Fault(step, "teardown", **details)]
    world.service.delete(name)
    _settle(world)
    with world.db.transaction() as session:
        row = store.get_environment(session, name)
    if not _for_good(details):
        assert row is None
        assert _owned(world, arn) == []
        return
    env = world.service.get(name)
    assert env["Status"] == "DELETING"
    assert "Deleting is stuck" in _error_of(env)["ErrorMessage"]
    # Once the cause is gone, the slow retry finishes the delete with no further request.
    world.faults.clear()
    with world.db.transaction() as session:
        store.compare_and_set(session, name, row.row_version, next_attempt_at=0.0)
    _settle(world)
    with world.db.transaction() as session:
        assert store.get_environment(session, name) is None
    assert _owned(world, arn) == []


REPAIRABLE = ["celery-queue", "dag-events", "log-groups"]


def _delete_from_outside(aws: AwsClients, step: str, name: str, env_id: str, bucket: str):
    """Delete what `step` made for the environment, as a user with boto3 would."""
    if step == "celery-queue":
        sqs = aws.client("sqs")
        sqs.delete_queue(
            QueueUrl=sqs.get_queue_url(QueueName=f"airflow-celery-{env_id}")["QueueUrl"]
        )
    elif step == "log-groups":
        aws.client("logs").delete_log_group(logGroupName=f"airflow-{name}-Scheduler")
    else:
        s3 = aws.client("s3")
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})


@pytest.mark.parametrize("step", REPAIRABLE)
@SETTINGS
@given(details=fault_details)
def test_a_fault_while_repairing_ends_available_or_unavailable(world, step, details):
    name = next(_names)
    arn = _create(world, name)
    _settle(world)
    row = world.db.read_environment(name)
    bucket = world.params["SourceBucketArn"].rsplit(":", 1)[-1]
    _delete_from_outside(world.host.aws, step, name, row.env_id, bucket)
    world.faults[:] = [Fault(step, "ensure", **details)]
    assert name in world.reconciler.drift.check()
    _settle(world)
    env = world.service.get(name)
    if _for_good(details):
        assert env["Status"] == "UNAVAILABLE"
        assert "Deleted outside Airdock" in _error_of(env)["ErrorMessage"]
    else:
        assert env["Status"] == "AVAILABLE", env["LastUpdate"]
        assert name not in world.reconciler.drift.check()
    _delete_completely(world, name, arn)
