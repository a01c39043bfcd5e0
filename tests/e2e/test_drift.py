"""Resources deleted from outside Airdock, with boto3, come back on their own."""

from __future__ import annotations

import pytest

from tests.conftest import make_prerequisites, start_server, wait_for_status
from tests.waiting import wait_until

LOGGING = {
    "SchedulerLogs": {"Enabled": True, "LogLevel": "INFO"},
    "TaskLogs": {"Enabled": True, "LogLevel": "INFO"},
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    server = start_server(
        tmp_path_factory.mktemp("drift") / "data", "--drift-check-interval", "0.5"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def environment(live):
    params = make_prerequisites(live)
    mwaa = live.mwaa()
    mwaa.create_environment(Name="drifty", LoggingConfiguration=LOGGING, **params)
    env = wait_for_status(mwaa, "drifty", {"AVAILABLE"})
    return env, params["SourceBucketArn"].rsplit(":", 1)[-1]


def _queue_exists(sqs, name: str) -> bool:
    return name in [u.rsplit("/", 1)[-1] for u in sqs.list_queues().get("QueueUrls", [])]


def test_a_deleted_celery_queue_comes_back(live, environment):
    env, _ = environment
    sqs = live.aws("sqs")
    url = env["CeleryExecutorQueue"]
    name = url.rsplit("/", 1)[-1] if "/" in url else url.rsplit(":", 1)[-1]
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
    assert not _queue_exists(sqs, name)
    wait_until(lambda: _queue_exists(sqs, name), timeout=30, message=f"queue {name} to be back")
    tags = sqs.list_queue_tags(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])["Tags"]
    assert tags["airdock:environment"] == env["Arn"]
    assert wait_for_status(live.mwaa(), "drifty", {"AVAILABLE"})


def test_a_deleted_log_group_comes_back(live, environment):
    logs = live.aws("logs")
    group = "airflow-drifty-Task"
    logs.delete_log_group(logGroupName=group)

    def back() -> bool:
        found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        return [g["logGroupName"] for g in found] == [group]

    wait_until(back, timeout=30, message=f"log group {group} to be back")
    assert logs.list_tags_log_group(logGroupName=group)["tags"]["airdock:environment"]
    assert live.mwaa().get_environment(Name="drifty")["Environment"]["Status"] == "AVAILABLE"


def test_a_removed_notification_entry_comes_back_beside_the_users_own(live, environment):
    _, bucket = environment
    s3 = live.aws("s3")
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    ours = [q for q in config["QueueConfigurations"] if q["Id"].startswith("airdock-dags-")]
    assert len(ours) == 1
    user_queue = live.aws("sqs").create_queue(QueueName="users-own-events")["QueueUrl"]
    user_arn = live.aws("sqs").get_queue_attributes(
        QueueUrl=user_queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    theirs = {"Id": "users-own", "QueueArn": user_arn, "Events": ["s3:ObjectCreated:*"]}
    # The user replaces the configuration with their own entry only, dropping ours.
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [theirs]}
    )

    def ids() -> list[str]:
        now = s3.get_bucket_notification_configuration(Bucket=bucket)
        return sorted(q["Id"] for q in now.get("QueueConfigurations", []))

    wait_until(
        lambda: ids() == sorted(["users-own", ours[0]["Id"]]),
        timeout=30,
        message="our notification entry to be back beside the user's",
    )


def test_the_shared_dag_event_queue_comes_back_and_still_brings_dags(live, environment):
    _, bucket = environment
    sqs = live.aws("sqs")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName="airdock-dag-events")["QueueUrl"])
    wait_until(
        lambda: _queue_exists(sqs, "airdock-dag-events"),
        timeout=30,
        message="the DAG event queue to be back",
    )
    live.aws("s3").put_object(Bucket=bucket, Key="dags/after_drift.py", Body=b"# back\n")
    mirrored = live.data_dir / "environments" / "drifty" / "dags" / "after_drift.py"
    wait_until(mirrored.exists, timeout=60, message="a DAG uploaded afterwards to be mirrored")
