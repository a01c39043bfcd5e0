"""The embedded AWS keeps what users put in it across restarts, SIGKILL included.

Every test drives a real EmbeddedAws child process with the real boto3 client, kills or stops
it, starts a new one on the same data directory and compares what it answers. A SIGKILL is
sent right after the last acknowledged write: nothing waits for a snapshot, since the journal
makes each write durable before it is acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from environments.emulator.state import operations, snapshot_file
from environments.emulator.supervisor import EmbeddedAws, free_port
from tests.waiting import wait_until

REGION = "us-east-1"
# A snapshot written at start-up after a fallback lands well within this.
SNAPSHOT_WAIT = 15.0
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "airflow-env.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
STACK_TEMPLATE = {
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stack-queue"}},
    },
    "Outputs": {
        "QueueUrl": {"Value": {"Ref": "Queue"}},
        "QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}},
    },
}

Clients = Callable[..., Any]


@contextmanager
def embedded(data_dir: Path) -> Iterator[EmbeddedAws]:
    aws = EmbeddedAws(data_dir)
    aws.start()
    try:
        yield aws
    finally:
        aws.stop()


def clients_for(aws: EmbeddedAws, **config: Any) -> Clients:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=aws.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 2}, **config),
        )

    return client


def kill(aws: EmbeddedAws) -> None:
    assert aws._process is not None
    os.kill(aws._process.pid, signal.SIGKILL)
    aws._process.wait()


def snapshots(data_dir: Path) -> set[Path]:
    return set((data_dir / "aws-state" / "snapshots").glob("gen-*.snap"))


def bucket_names(client: Clients) -> set[str]:
    return {bucket["Name"] for bucket in client("s3").list_buckets()["Buckets"]}


def test_everything_survives_sigkill(tmp_path: Path) -> None:
    with embedded(tmp_path) as aws:
        client = clients_for(aws)
        poller = LongPoll(clients_for(aws, read_timeout=30), client)
        made = populate(client)
        before = describe(client, made)
        # The long poll is still waiting: it must not have held the writes back.
        assert poller.waiting
        kill(aws)

    with embedded(tmp_path) as aws:
        client = clients_for(aws)
        after = describe(client, made)
        assert after == before
        # The KMS key material survived too: a ciphertext from before still decrypts.
        plain = client("kms").decrypt(CiphertextBlob=made["ciphertext"])["Plaintext"]
        assert plain == b"secret"
        message = client("sqs").receive_message(QueueUrl=made["queue_url"])["Messages"][0]
        assert (message["MessageId"], message["Body"]) == (made["message_id"], "hello")


def test_a_damaged_snapshot_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    # Each stop writes a final snapshot.
    with embedded(tmp_path) as aws:
        clients_for(aws)("s3").create_bucket(Bucket="first")
    good = snapshots(tmp_path)
    assert good

    with embedded(tmp_path) as aws:
        clients_for(aws)("s3").create_bucket(Bucket="second")
    newer = snapshots(tmp_path) - good
    assert newer
    for path in newer:
        damage(path)

    with embedded(tmp_path) as aws:
        # The older snapshot loads, and the journal kept since it replays the newer change.
        assert bucket_names(clients_for(aws)) == {"first", "second"}
        # Having skipped damaged snapshots, it writes a good newest one of its own.
        wait_until(
            lambda: snapshots(tmp_path) - good,
            timeout=SNAPSHOT_WAIT,
            message="a snapshot written after the fallback",
        )
        kill(aws)
    log = (tmp_path / "aws.log").read_text()
    assert "cannot be loaded" in log
    quarantined = {path.name.split(".snap")[0] for path in quarantine(tmp_path)}
    assert quarantined == {path.name.split(".snap")[0] for path in newer}

    # With no loadable snapshot left, it starts empty rather than not at all.
    for path in snapshots(tmp_path):
        damage(path)
    with embedded(tmp_path) as aws:
        assert bucket_names(clients_for(aws)) == set()
    assert "starting empty" in (tmp_path / "aws.log").read_text()


def test_sigterm_writes_a_final_snapshot(tmp_path: Path) -> None:
    with embedded(tmp_path) as aws:
        s3 = clients_for(aws)("s3")
        s3.create_bucket(Bucket="last-moment")
        s3.put_object(Bucket="last-moment", Key="k", Body=b"just before the stop")
        stop_asked = time.time()
    newest = max(snapshots(tmp_path))
    assert newest.stat().st_mtime >= stop_asked
    assert "final snapshot written" in (tmp_path / "aws.log").read_text()

    with embedded(tmp_path) as aws:
        body = clients_for(aws)("s3").get_object(Bucket="last-moment", Key="k")["Body"].read()
        assert body == b"just before the stop"


def test_state_from_another_moto_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with embedded(tmp_path) as aws:
        clients_for(aws)("s3").create_bucket(Bucket="kept")
    newest = max(snapshots(tmp_path))
    rewrite_header(newest, moto="0.0.1")

    with pytest.raises(RuntimeError, match="exited early"):
        EmbeddedAws(tmp_path).start()
    log = (tmp_path / "aws.log").read_text()
    assert "written by moto 0.0.1" in log
    assert "Install moto==0.0.1 again" in log
    # Nothing was thrown away: the refused snapshot is still where it was.
    assert newest.exists()


def test_only_loopback_addresses_are_served(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "environments.emulator.server", "--host", "0.0.0.0"]
    command += ["--port", str(free_port()), "--state-dir", str(tmp_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert "loopback" in finished.stderr


def test_two_servers_never_share_a_state_dir(tmp_path: Path) -> None:
    with embedded(tmp_path):
        second = EmbeddedAws(tmp_path, port=free_port(), lock_wait=0.5)
        with pytest.raises(RuntimeError, match="exited early"):
            second.start()
    assert "another embedded AWS is using" in (tmp_path / "aws.log").read_text()


class LongPoll:
    """An SQS receive that waits on an empty queue for the whole test, in the background."""

    def __init__(self, poll_client: Clients, client: Clients) -> None:
        url = client("sqs").create_queue(QueueName="idle")["QueueUrl"]
        self._started = threading.Event()
        self._finished = threading.Event()
        sqs = poll_client("sqs")

        def poll() -> None:
            self._started.set()
            # The server is killed under it, so the call may fail.
            with contextlib.suppress(Exception):
                sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
            self._finished.set()

        threading.Thread(target=poll, daemon=True).start()
        self._started.wait()

    @property
    def waiting(self) -> bool:
        return not self._finished.is_set()


def populate(client: Clients) -> dict[str, Any]:
    made: dict[str, Any] = {}
    s3 = client("s3")
    s3.create_bucket(Bucket="dags")
    s3.put_bucket_versioning(Bucket="dags", VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket="dags",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_object(Bucket="dags", Key="dags/hello.py", Body=b"version one")
    s3.put_object(Bucket="dags", Key="dags/hello.py", Body=b"version two")

    client("iam").create_role(
        RoleName="execution", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY)
    )

    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    for cidr, zone in (("10.1.1.0/24", "us-east-1a"), ("10.1.2.0/24", "us-east-1b")):
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)
    ec2.create_security_group(GroupName="airflow", Description="workers", VpcId=vpc)
    made["vpc"] = vpc

    logs = client("logs")
    logs.create_log_group(logGroupName="airflow-task")
    logs.put_retention_policy(logGroupName="airflow-task", retentionInDays=14)
    logs.create_log_stream(logGroupName="airflow-task", logStreamName="worker-1")
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": f"line {i}"} for i in range(3)]
    logs.put_log_events(logGroupName="airflow-task", logStreamName="worker-1", logEvents=events)

    sqs = client("sqs")
    made["queue_url"] = sqs.create_queue(QueueName="celery", tags={"team": "data"})["QueueUrl"]
    made["message_id"] = sqs.send_message(QueueUrl=made["queue_url"], MessageBody="hello")[
        "MessageId"
    ]

    kms = client("kms")
    made["enabled_key"] = kms.create_key(Description="enabled")["KeyMetadata"]["KeyId"]
    made["disabled_key"] = kms.create_key(Description="disabled")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=made["disabled_key"])
    made["ciphertext"] = kms.encrypt(KeyId=made["enabled_key"], Plaintext=b"secret")[
        "CiphertextBlob"
    ]

    client("cloudwatch").put_metric_data(
        Namespace="Airdock", MetricData=[{"MetricName": "Heartbeat", "Value": 1.0}]
    )
    client("cloudformation").create_stack(
        StackName="prerequisites", TemplateBody=json.dumps(STACK_TEMPLATE)
    )
    return made


def describe(client: Clients, made: dict[str, Any]) -> dict[str, Any]:
    """Everything a user could observe about what populate() made, ids included."""
    s3, ec2, logs, sqs = client("s3"), client("ec2"), client("logs"), client("sqs")
    kms, cfn = client("kms"), client("cloudformation")
    versions = s3.list_object_versions(Bucket="dags")["Versions"]
    vpc_filter = [{"Name": "vpc-id", "Values": [made["vpc"]]}]
    return {
        "versioning": s3.get_bucket_versioning(Bucket="dags")["Status"],
        "public_access": s3.get_public_access_block(Bucket="dags")[
            "PublicAccessBlockConfiguration"
        ],
        "versions": sorted(
            (v["Key"], v["VersionId"], v["IsLatest"], v["ETag"], v["Size"]) for v in versions
        ),
        "bodies": {
            v["VersionId"]: s3.get_object(Bucket="dags", Key=v["Key"], VersionId=v["VersionId"])[
                "Body"
            ].read()
            for v in versions
        },
        "role": client("iam").get_role(RoleName="execution")["Role"],
        "vpcs": ec2.describe_vpcs()["Vpcs"],
        "subnets": sorted(
            (s["SubnetId"], s["AvailabilityZone"], s["CidrBlock"])
            for s in ec2.describe_subnets(Filters=vpc_filter)["Subnets"]
        ),
        "security_groups": ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"],
        "log_groups": logs.describe_log_groups()["logGroups"],
        "log_streams": logs.describe_log_streams(logGroupName="airflow-task")["logStreams"],
        "log_events": [
            (e["timestamp"], e["message"])
            for e in logs.get_log_events(logGroupName="airflow-task", logStreamName="worker-1")[
                "events"
            ]
        ],
        # Queue URLs embed the endpoint, so this also checks the restart kept the port.
        "queue_urls": sorted(sqs.list_queues()["QueueUrls"]),
        "queue_tags": sqs.list_queue_tags(QueueUrl=made["queue_url"])["Tags"],
        "queue_attributes": sqs.get_queue_attributes(
            QueueUrl=made["queue_url"], AttributeNames=["All"]
        )["Attributes"],
        "keys": [
            kms.describe_key(KeyId=made[name])["KeyMetadata"]
            for name in ("enabled_key", "disabled_key")
        ],
        "metrics": client("cloudwatch").list_metrics(Namespace="Airdock")["Metrics"],
        "stacks": cfn.describe_stacks(StackName="prerequisites")["Stacks"],
        "stack_resources": [
            (r["LogicalResourceId"], r["PhysicalResourceId"])
            for r in cfn.list_stack_resources(StackName="prerequisites")["StackResourceSummaries"]
        ],
        "identity": client("sts").get_caller_identity()["Arn"],
    }


def damage(path: Path) -> None:
    """Flip bytes in the middle of a snapshot, as a bad disk or a torn copy would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def quarantine(data_dir: Path) -> set[Path]:
    return set((data_dir / "aws-state" / "quarantine").iterdir())


def rewrite_header(path: Path, **changes: Any) -> None:
    data = path.read_bytes()
    start = len(snapshot_file.MAGIC)
    (length,) = struct.unpack(">I", data[start : start + 4])
    header = json.loads(data[start + 4 : start + 4 + length])
    header.update(changes)
    encoded = json.dumps(header).encode()
    payload = data[start + 4 + length :]
    path.write_bytes(snapshot_file.MAGIC + struct.pack(">I", len(encoded)) + encoded + payload)


@pytest.mark.parametrize(
    ("environ", "body", "read_only"),
    [
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/dags"}, b"", True),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/dags/key"}, b"data", False),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSQS.ListQueues"}, b"{}", True),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b"", False),
        (
            {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"},
            b"Action=DescribeVpcs&Version=2016-11-15",
            True,
        ),
        (
            {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"},
            b"Action=GetSessionToken&Version=2011-06-15",
            False,
        ),
        (
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/service/GraniteServiceVersion20100801/operation/PutMetricData",
            },
            b"",
            False,
        ),
    ],
)
def test_read_only_calls_are_told_from_mutating_ones(
    environ: dict[str, str], body: bytes, read_only: bool
) -> None:
    assert operations.is_read_only(environ, body) is read_only
