"""Acknowledged writes survive a SIGKILL of the whole process tree, with the same ids.

The embedded AWS runs under a parent process (as under `airdock serve`); right after the last
acknowledged write the test SIGKILLs the emulator and its parent together, starts a new tree
on the same data directory and checks that every write is there, ids included.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from environments.emulator.state import journal_file
from environments.plumbing import processes
from tests.environments.emulator.test_embedded_aws import TRUST_POLICY

ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
STACK_TEMPLATE = {
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stacked"}}},
}


@dataclass
class Tree:
    parent: subprocess.Popen[bytes]
    emulator_pid: int
    endpoint: str

    def client(self, service: str, **credentials: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=credentials.get("key", "testing"),
            aws_secret_access_key=credentials.get("secret", "testing"),
            aws_session_token=credentials.get("token"),
            config=Config(retries={"max_attempts": 1}),
        )

    def kill(self) -> None:
        """SIGKILL the emulator and its parent, as a crash of the machine's process tree."""
        processes.signal_group(self.emulator_pid, signal.SIGKILL)
        processes.signal_group(self.parent.pid, signal.SIGKILL)
        self.parent.wait()


@contextlib.contextmanager
def aws_tree(data_dir: Path) -> Iterator[Tree]:
    parent = processes.spawn(
        [sys.executable, "-m", "tests.environments.emulator.aws_parent", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().split()
        assert line, f"the embedded AWS did not start; see {data_dir / 'aws.log'}"
        port, emulator_pid = int(line[0]), int(line[1])
        tree = Tree(parent, emulator_pid, f"http://127.0.0.1:{port}")
        try:
            yield tree
        finally:
            processes.signal_group(emulator_pid, signal.SIGKILL)
    finally:
        processes.signal_group(parent.pid, signal.SIGKILL)
        parent.wait()


def write_everything(tree: Tree) -> dict[str, Any]:
    """One write of each kind the control plane and its users make; returns the ids."""
    made: dict[str, Any] = {}
    sqs, s3 = tree.client("sqs"), tree.client("s3")
    made["events_url"] = sqs.create_queue(QueueName="bucket-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=made["events_url"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.create_bucket(Bucket="journal-dags")
    made["notification"] = {
        "QueueConfigurations": [
            {
                "Id": "airdock-env-1",
                "QueueArn": events_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "dags/"}]}},
            }
        ]
    }
    s3.put_bucket_notification_configuration(
        Bucket="journal-dags", NotificationConfiguration=made["notification"]
    )
    made["small"] = b"print('hello')\n"
    made["large"] = os.urandom(3 * 1024 * 1024)  # journaled by reference to a blob
    s3.put_object(Bucket="journal-dags", Key="dags/hello.py", Body=made["small"])
    s3.put_object(Bucket="journal-dags", Key="plugins.bin", Body=made["large"])
    s3.put_object(Bucket="journal-dags", Key="dags/gone.py", Body=b"soon deleted")
    s3.delete_object(Bucket="journal-dags", Key="dags/gone.py")
    upload = s3.create_multipart_upload(Bucket="journal-dags", Key="requirements.txt")
    made["upload_id"] = upload["UploadId"]
    made["part_etag"] = s3.upload_part(
        Bucket="journal-dags",
        Key="requirements.txt",
        UploadId=made["upload_id"],
        PartNumber=1,
        Body=b"apache-airflow-providers-amazon\n",
    )["ETag"]

    logs = tree.client("logs")
    logs.create_log_group(logGroupName="airflow-env-Task")
    logs.create_log_stream(logGroupName="airflow-env-Task", logStreamName="worker-1")
    made["log_time"] = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="airflow-env-Task",
        logStreamName="worker-1",
        logEvents=[{"timestamp": made["log_time"], "message": "task started"}],
    )
    made["log_group"] = logs.describe_log_groups(logGroupNamePrefix="airflow-env")["logGroups"]

    made["queue_url"] = sqs.create_queue(QueueName="airflow-celery")["QueueUrl"]
    made["message_id"] = sqs.send_message(QueueUrl=made["queue_url"], MessageBody="run dag")[
        "MessageId"
    ]

    role = tree.client("iam").create_role(
        RoleName="execution", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY)
    )["Role"]
    made["role"] = (role["RoleId"], role["Arn"], role["CreateDate"])
    assumed = tree.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="worker")
    made["assumed"] = assumed["AssumedRoleUser"]["Arn"]
    made["credentials"] = assumed["Credentials"]

    ec2 = tree.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24", AvailabilityZone="us-east-1a")
    made["subnet"] = (vpc, subnet["Subnet"]["SubnetId"], subnet["Subnet"]["SubnetArn"])

    made["stack_id"] = tree.client("cloudformation").create_stack(
        StackName="prerequisites", TemplateBody=json.dumps(STACK_TEMPLATE)
    )["StackId"]
    # The very last acknowledged write: the tree dies right after its 200.
    made["last_bucket"] = "written-last"
    s3.create_bucket(Bucket=made["last_bucket"])
    return made


def check_everything(tree: Tree, made: dict[str, Any]) -> None:
    s3 = tree.client("s3")
    assert (
        s3.get_bucket_notification_configuration(Bucket="journal-dags")["QueueConfigurations"]
        == made["notification"]["QueueConfigurations"]
    )
    assert s3.get_object(Bucket="journal-dags", Key="dags/hello.py")["Body"].read() == made["small"]
    assert s3.get_object(Bucket="journal-dags", Key="plugins.bin")["Body"].read() == made["large"]
    with pytest.raises(ClientError, match="404"):
        s3.head_object(Bucket="journal-dags", Key="dags/gone.py")
    # The upload id from before the crash still takes the upload to its end.
    s3.complete_multipart_upload(
        Bucket="journal-dags",
        Key="requirements.txt",
        UploadId=made["upload_id"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": made["part_etag"]}]},
    )
    body = s3.get_object(Bucket="journal-dags", Key="requirements.txt")["Body"].read()
    assert body == b"apache-airflow-providers-amazon\n"
    assert made["last_bucket"] in {b["Name"] for b in s3.list_buckets()["Buckets"]}

    logs = tree.client("logs")
    assert (
        logs.describe_log_groups(logGroupNamePrefix="airflow-env")["logGroups"] == made["log_group"]
    )
    events = logs.get_log_events(logGroupName="airflow-env-Task", logStreamName="worker-1")
    assert [(e["timestamp"], e["message"]) for e in events["events"]] == [
        (made["log_time"], "task started")
    ]

    sqs = tree.client("sqs")
    messages = sqs.receive_message(QueueUrl=made["queue_url"])["Messages"]
    assert [(m["MessageId"], m["Body"]) for m in messages] == [(made["message_id"], "run dag")]
    assert made["events_url"] in sqs.list_queues()["QueueUrls"]

    role = tree.client("iam").get_role(RoleName="execution")["Role"]
    assert (role["RoleId"], role["Arn"], role["CreateDate"]) == made["role"]
    credentials = made["credentials"]
    caller = tree.client(
        "sts",
        key=credentials["AccessKeyId"],
        secret=credentials["SecretAccessKey"],
        token=credentials["SessionToken"],
    ).get_caller_identity()
    assert caller["Arn"] == made["assumed"]

    vpc, subnet_id, subnet_arn = made["subnet"]
    subnet = tree.client("ec2").describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    assert (subnet["VpcId"], subnet["SubnetArn"], subnet["CidrBlock"]) == (
        vpc,
        subnet_arn,
        "10.7.1.0/24",
    )

    stack = tree.client("cloudformation").describe_stacks(StackName="prerequisites")["Stacks"][0]
    assert stack["StackId"] == made["stack_id"]


def test_acknowledged_writes_survive_sigkill_of_the_process_tree(tmp_path: Path) -> None:
    with aws_tree(tmp_path) as tree:
        made = write_everything(tree)
        tree.kill()
    with aws_tree(tmp_path) as tree:
        check_everything(tree, made)
    assert "replayed" in (tmp_path / "aws.log").read_text()


def test_writes_after_a_compacting_snapshot_survive_too(tmp_path: Path) -> None:
    """Half the writes go into a snapshot (an orderly stop), the rest only into the journal."""
    with aws_tree(tmp_path) as tree:
        tree.client("s3").create_bucket(Bucket="before-snapshot")
        role_id = tree.client("iam").create_role(
            RoleName="early", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY)
        )["Role"]["RoleId"]
        tree.parent.send_signal(signal.SIGTERM)
        tree.parent.wait()
    with aws_tree(tmp_path) as tree:
        made = write_everything(tree)
        tree.kill()
    with aws_tree(tmp_path) as tree:
        check_everything(tree, made)
        assert tree.client("iam").get_role(RoleName="early")["Role"]["RoleId"] == role_id
        buckets = {b["Name"] for b in tree.client("s3").list_buckets()["Buckets"]}
        assert "before-snapshot" in buckets


def test_a_torn_last_record_is_ignored_cleanly(tmp_path: Path) -> None:
    with aws_tree(tmp_path) as tree:
        tree.client("s3").create_bucket(Bucket="acknowledged")
        tree.client("logs").create_log_group(logGroupName="acknowledged-group")
        tree.kill()
    # A crash in the middle of appending the next record leaves half of it on disk.
    newest = journal_file.segments(tmp_path / "aws-state" / "journal")[-1][1]
    torn = journal_file.encode(
        {"seq": 10**6, "environ": {"REQUEST_METHOD": "PUT", "PATH_INFO": "/never"}}, b""
    )
    with open(newest, "ab") as segment:
        segment.write(torn[: len(torn) // 2])

    with aws_tree(tmp_path) as tree:
        s3 = tree.client("s3")
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {"acknowledged"}
        groups = tree.client("logs").describe_log_groups()["logGroups"]
        assert [g["logGroupName"] for g in groups] == ["acknowledged-group"]
        # The journal goes on after the tear: a later write survives the next crash.
        s3.create_bucket(Bucket="after-the-tear")
        tree.kill()
    log = (tmp_path / "aws.log").read_text()
    assert "journal replay stopped at" in log and "a torn record" in log

    with aws_tree(tmp_path) as tree:
        names = {b["Name"] for b in tree.client("s3").list_buckets()["Buckets"]}
        assert names == {"acknowledged", "after-the-tear"}


def test_received_and_deleted_messages_stay_so(tmp_path: Path) -> None:
    """ReceiveMessage is journaled where its outcome was decided, after the send that a long
    poll woke up for: a receipt handle from before the crash still deletes its message."""
    with aws_tree(tmp_path) as tree:
        sqs = tree.client("sqs")
        url = sqs.create_queue(QueueName="work")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="done before the crash")
        done = sqs.receive_message(QueueUrl=url)["Messages"][0]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=done["ReceiptHandle"])

        received: list[dict[str, Any]] = []
        poller = tree.client("sqs")
        waiting = threading.Thread(
            target=lambda: received.extend(
                poller.receive_message(QueueUrl=url, WaitTimeSeconds=10).get("Messages", [])
            )
        )
        waiting.start()
        sqs.send_message(QueueUrl=url, MessageBody="picked up by the long poll")
        waiting.join()
        assert [m["Body"] for m in received] == ["picked up by the long poll"]
        tree.kill()

    with aws_tree(tmp_path) as tree:
        sqs = tree.client("sqs")
        url = sqs.get_queue_url(QueueName="work")["QueueUrl"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
        counts = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert counts == {
            "ApproximateNumberOfMessages": "0",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }


def test_a_missing_journaled_body_ends_the_replay_without_stopping_the_server(
    tmp_path: Path,
) -> None:
    with aws_tree(tmp_path) as tree:
        s3 = tree.client("s3")
        s3.create_bucket(Bucket="kept-bucket")
        s3.put_object(Bucket="kept-bucket", Key="big", Body=os.urandom(256 * 1024))
        tree.kill()
    # The body the journal refers to is lost (a damaged disk, a careless cleanup).
    for path in (tmp_path / "aws-state" / "blobs").glob("*/*"):
        path.unlink()

    with aws_tree(tmp_path) as tree:
        s3 = tree.client("s3")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["kept-bucket"]
        assert s3.list_objects_v2(Bucket="kept-bucket")["KeyCount"] == 0
    assert "journal replay stopped at record" in (tmp_path / "aws.log").read_text()
