"""Faults and crashes: throttled/5xx AWS answers, and SIGKILLs of airdock mid-flight.

The AWS here is an EmbeddedAws the test owns, so it outlives every airdock it points at.
Afterwards every log group and queue tagged by Airdock must belong to a live environment.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from environments.emulator.supervisor import EmbeddedAws
from tests.conftest import make_prerequisites, start_server, wait_for_status, wait_gone
from tests.e2e.faulty_proxy import FaultyProxy
from tests.waiting import wait_until

OWNER_TAG = "airdock:environment"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def aws(tmp_path):
    embedded = EmbeddedAws(tmp_path / "aws")
    embedded.start()
    yield embedded
    embedded.stop()


def _owned(live, endpoint: str) -> set[str]:
    """Environment ARNs named by Airdock's owner tag on every log group and queue."""
    logs, sqs = live.aws("logs", endpoint), live.aws("sqs", endpoint)
    owners: set[str] = set()
    for group in logs.describe_log_groups()["logGroups"]:
        tags = logs.list_tags_log_group(logGroupName=group["logGroupName"])["tags"]
        if OWNER_TAG in tags:
            owners.add(tags[OWNER_TAG])
    for url in sqs.list_queues().get("QueueUrls", []):
        tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        if OWNER_TAG in tags:
            owners.add(tags[OWNER_TAG])
    return owners


def _live_arns(client) -> set[str]:
    return {
        client.get_environment(Name=n)["Environment"]["Arn"]
        for n in client.list_environments()["Environments"]
    }


def test_throttling_and_5xx_are_retried_until_convergence(tmp_path, aws):
    with FaultyProxy(aws.endpoint, period=10, burst=3) as proxy:
        live = start_server(tmp_path / "data", "--aws-endpoint", proxy.endpoint, env=AWS_ENV)
        try:
            client = live.mwaa()
            params = _prereqs(live, aws.endpoint)
            names = [f"faulty-{i}" for i in range(4)]
            logging = {"WorkerLogs": {"Enabled": True, "LogLevel": "INFO"}}
            for name in names:
                client.create_environment(Name=name, **params, LoggingConfiguration=logging)
            for name in names:
                wait_for_status(client, name, {"AVAILABLE"}, timeout=120)
            for name in names[:2]:
                client.delete_environment(Name=name)
            for name in names[:2]:
                wait_gone(client, name, timeout=120)
            assert proxy.failed > 10
            assert _owned(live, aws.endpoint) == _live_arns(client)
        finally:
            live.stop()


def _prereqs(live, endpoint: str) -> dict:
    original = live.endpoints["aws_endpoint"]
    live.endpoints["aws_endpoint"] = endpoint
    try:
        return make_prerequisites(live)
    finally:
        live.endpoints["aws_endpoint"] = original


def test_repeated_sigkill_during_create_update_delete(tmp_path, aws):
    rng = random.Random(7)
    data_dir = tmp_path / "data"
    live = start_server(data_dir, "--aws-endpoint", aws.endpoint, env=AWS_ENV)
    params = _prereqs(live, aws.endpoint)
    names = [f"kill-{i}" for i in range(8)]
    every_module = {
        m: {"Enabled": True, "LogLevel": "INFO"}
        for m in ("DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs")
    }
    plan = [
        lambda c: [
            c.create_environment(Name=n, **params, LoggingConfiguration=every_module) for n in names
        ],
        lambda c: [_try(c.update_environment, Name=n, MaxWorkers=3) for n in names[:4]],
        lambda c: [_try(c.delete_environment, Name=n) for n in names[4:]],
    ]
    try:
        for action in plan:
            client = live.mwaa()
            action(client)
            for _ in range(3):  # kill it a few times while the reconciler is mid-work
                # Not a wait for anything: a random moment to crash is what this test is about.
                time.sleep(rng.uniform(0.05, 0.4))
                live.stop(signal.SIGKILL)
                live = start_server(data_dir, "--aws-endpoint", aws.endpoint, env=AWS_ENV)
            client = live.mwaa()
            for name in names:
                _settle(client, name)
        client = live.mwaa()
        remaining = sorted(client.list_environments()["Environments"])
        assert remaining == names[:4]
        for name in remaining:
            env = client.get_environment(Name=name)["Environment"]
            assert env["Status"] == "AVAILABLE"
            assert env["MaxWorkers"] == 3
        assert _owned(live, aws.endpoint) == _live_arns(client)
    finally:
        live.stop()


def _try(call, **kwargs) -> None:
    def accepted() -> bool:
        try:
            call(**kwargs)
        except Exception as err:  # an update may race a still-CREATING environment: retry
            if "cannot be" not in str(err):
                raise
            return False
        return True

    what = f"{call.__name__}({kwargs}) to be accepted"
    wait_until(accepted, timeout=60, interval=0.2, message=what)


def _settle(client, name: str, timeout: float = 60) -> None:
    def settled() -> bool:
        try:
            status = client.get_environment(Name=name)["Environment"]["Status"]
        except client.exceptions.ResourceNotFoundException:
            return True
        return status in ("AVAILABLE", "CREATE_FAILED", "UPDATE_FAILED")

    wait_until(settled, timeout=timeout, interval=0.1, message=f"{name} to settle")
