"""Drift checks with the real steps against an embedded AWS: their cost stays flat as
environments grow, what was deleted from outside is made again, and an environment whose
resources cannot be made again is UNAVAILABLE with the reason until they can."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from environments.aws.clients import AwsClients, AwsTarget
from environments.emulator.supervisor import EmbeddedAws
from environments.host import HostServices
from environments.naming import Placement
from environments.provisioning.plan import default_steps
from environments.provisioning.reconciler import Reconciler
from environments.service import EnvironmentService
from environments.store import Store
from tests.conftest import make_prerequisites

PLACE = Placement(account_id="123456789012", region="us-east-1")
LOGGING = {"SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"}}


class _Aws:
    def __init__(self, clients: AwsClients) -> None:
        self.clients = clients

    def aws(self, service: str) -> Any:
        return self.clients.client(service)


@pytest.fixture
def world(tmp_path):
    aws = EmbeddedAws(tmp_path / "aws")
    aws.start()
    clients = AwsClients(
        AwsTarget(PLACE.region, aws.endpoint, access_key_id="testing", secret_access_key="t")
    )
    db = Store(f"sqlite:///{tmp_path / 'store.db'}")
    db.create_schema()
    host = HostServices(aws=clients, data_dir=tmp_path / "data", airflow_venvs=False)
    reconciler = Reconciler(db, PLACE, default_steps(), owner="drift", services=host)
    try:
        yield db, EnvironmentService(db, PLACE), reconciler, _Aws(clients)
    finally:
        db.dispose()
        aws.stop()


def _create(service, reconciler, params: dict, names: list[str]) -> None:
    for name in names:
        service.create(name, {**json.loads(json.dumps(params)), "LoggingConfiguration": LOGGING})
    reconciler.run_until_idle(timeout=120)
    assert {service.get(n)["Status"] for n in names} == {"AVAILABLE"}


def _calls_of_one_check(reconciler, clients: AwsClients) -> Counter:
    calls: Counter = Counter()

    def count(model, **_):
        calls[model.name] += 1

    for service in ("s3", "sqs", "logs"):
        clients.client(service).meta.events.register("before-call", count)
    try:
        assert reconciler.drift.check() == {}  # nothing is gone
    finally:
        for service in ("s3", "sqs", "logs"):
            clients.client(service).meta.events.unregister("before-call", count)
    return calls


def test_the_cost_of_a_check_does_not_grow_with_environments(world):
    _, service, reconciler, aws = world
    params = make_prerequisites(aws)
    _create(service, reconciler, params, [f"flat-{i}" for i in range(3)])
    few = _calls_of_one_check(reconciler, aws.clients)
    _create(service, reconciler, params, [f"flat-{i}" for i in range(3, 15)])
    many = _calls_of_one_check(reconciler, aws.clients)
    assert few == many, (few, many)
    assert sum(many.values()) <= 5  # a listing each, one read per bucket, the event queue


def test_what_cannot_be_made_again_makes_the_environment_unavailable_until_it_can(world):
    _, service, reconciler, aws = world
    params = make_prerequisites(aws)
    _create(service, reconciler, params, ["orphan"])
    s3 = aws.aws("s3")
    bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
    s3.delete_bucket(Bucket=bucket)  # the environment's entry goes with it

    gone = reconciler.drift.check()
    entry = f"airdock-dags-{_id(world)}"
    assert gone == {"orphan": [("dag-events", f"the notification entry {entry} of {bucket}")]}
    reconciler.run_until_idle()
    env = service.get("orphan")
    assert env["Status"] == "UNAVAILABLE"
    assert "Deleted outside Airdock" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert "NoSuchBucket" in env["LastUpdate"]["Error"]["ErrorMessage"]
    assert reconciler.drift.check()  # still gone: tried again, still UNAVAILABLE
    reconciler.run_until_idle()
    assert service.get("orphan")["Status"] == "UNAVAILABLE"

    s3.create_bucket(Bucket=bucket)  # the bucket is back: the next check repairs
    reconciler.drift.check()
    reconciler.run_until_idle()
    env = service.get("orphan")
    assert env["Status"] == "AVAILABLE"
    assert "Error" not in env["LastUpdate"]
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert [q["Id"] for q in config["QueueConfigurations"]] == [entry]
    assert reconciler.drift.check() == {}


def _id(world) -> str:
    db = world[0]
    return db.read_environment("orphan").env_id
