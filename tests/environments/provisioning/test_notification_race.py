"""The shared bucket's notification configuration under concurrency.

200 environments on one bucket add their entries at once, then 100 of them remove theirs while
100 new ones add theirs. The DagEvents step runs for real against an embedded AWS, from many
threads at once, through two Store objects (as two replicas would) on SQLite and PostgreSQL.
Without the lock, entries were lost on create and left behind on delete.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from environments.aws.clients import AwsClients, AwsTarget
from environments.emulator.supervisor import EmbeddedAws
from environments.host import HostServices
from environments.naming import Placement
from environments.plumbing.locks import LockTimeout
from environments.provisioning.step import DONE, StepContext
from environments.provisioning.steps.dag_events import DagEvents
from environments.store import Store

PLACE = Placement(account_id="123456789012", region="us-east-1")
BUCKET = "shared-dags"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory):
    aws = EmbeddedAws(tmp_path_factory.mktemp("race") / "aws")
    aws.start()
    clients = AwsClients(
        AwsTarget(PLACE.region, aws.endpoint, access_key_id="testing", secret_access_key="t")
    )
    clients.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield HostServices(aws=clients, dag_events=True)
    finally:
        aws.stop()


@pytest.fixture
def replicas(db_url: str):
    stores = [Store(db_url), Store(db_url)]
    stores[0].create_schema()
    yield stores
    for made in stores:
        made.dispose()


def _context(host: HostServices, db: Store, i: int) -> StepContext:
    name = f"race-{i}"
    return StepContext(
        name=name,
        arn=PLACE.environment_arn(name),
        env_id=f"id{i:04d}",
        spec={"SourceBucketArn": f"arn:aws:s3:::{BUCKET}", "DagS3Path": f"dags/{name}"},
        tags={},
        placement=PLACE,
        services=host,
        exclusive=db.exclusive,
    )


def _entries(host: HostServices) -> list[str]:
    config = host.aws.client("s3").get_bucket_notification_configuration(Bucket=BUCKET)
    return sorted(q["Id"] for q in config.get("QueueConfigurations", []))


def test_concurrent_creates_and_deletes_keep_exactly_the_live_entries(host, replicas):
    step = DagEvents()
    contexts = {i: _context(host, replicas[i % 2], i) for i in range(300)}

    with ThreadPoolExecutor(64) as pool:
        created = list(pool.map(lambda i: step.ensure(contexts[i]), range(200)))
    assert created == [DONE] * 200
    assert _entries(host) == sorted(f"airdock-dags-id{i:04d}" for i in range(200))

    def churn(i: int):
        return step.teardown(contexts[i]) if i < 100 else step.ensure(contexts[i])

    with ThreadPoolExecutor(64) as pool:
        outcomes = list(pool.map(churn, [*range(100), *range(200, 300)]))
    assert outcomes == [DONE] * 200  # 0-99 left, 200-299 arrived
    assert _entries(host) == sorted(f"airdock-dags-id{i:04d}" for i in range(100, 300))

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda i: step.teardown(contexts[i]), range(100, 300)))
    assert _entries(host) == []


def _replica(endpoint: str, db_url: str, first: int, count: int, teardown: bool) -> list[str]:
    """One process, as a replica would be: its own clients and store, many threads."""
    clients = AwsClients(
        AwsTarget(PLACE.region, endpoint, access_key_id="testing", secret_access_key="t")
    )
    host = HostServices(aws=clients, dag_events=True)
    db = Store(db_url)
    step = DagEvents()
    try:
        contexts = [_context(host, db, i) for i in range(first, first + count)]
        run = step.teardown if teardown else step.ensure
        with ThreadPoolExecutor(16) as pool:
            return [type(outcome).__name__ for outcome in pool.map(run, contexts)]
    finally:
        db.dispose()


def test_replicas_in_separate_processes_keep_every_entry(host, replicas, db_url):
    endpoint = host.aws.target.endpoint_url
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as processes:
        for teardown in (False, True):
            jobs = [(endpoint, db_url, 1000 + 30 * k, 30, teardown) for k in range(2)]
            results = list(processes.map(_replica, *zip(*jobs, strict=True)))
            assert results == [["Done"] * 30] * 2
            wanted = [] if teardown else [f"airdock-dags-id{i:04d}" for i in range(1000, 1060)]
            assert _entries(host) == wanted


def test_a_lock_left_by_a_dead_holder_expires(replicas):
    first, second = replicas
    assert first.take_lock("bucket-x", "dead-holder", ttl=0.0)
    # Taken and not expired: others wait and give up.
    assert first.take_lock("bucket-y", "holder", ttl=60)
    with pytest.raises(LockTimeout), second.exclusive("bucket-y", timeout=0.05):
        pass
    # Expired (its holder died without releasing): the next taker gets it.
    with second.exclusive("bucket-x", timeout=5):
        assert not first.take_lock("bucket-x", "someone-else", ttl=60)
    assert first.take_lock("bucket-x", "someone-else", ttl=60)  # released on leaving
