"""The embedded AWS as a tenancy boundary, tried as an attacker would, with the team example
config: every request signed with a known key, each team on its own resources only, moto's
back doors closed, and environments reading their bucket as their execution role."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import LiveServer, make_prerequisites, wait_for_status
from tests.e2e.iam_support import (
    ACCOUNT,
    REGION,
    ROLE_KEY,
    USER_KEYS,
    IamServer,
    execution_role,
    sign,
)

pytest_plugins = ["tests.e2e.iam_fixtures"]

FORGED = ("AKIAFORGEDKEY0000000", "forged-secret-forged-secret-forged-1234")


def aws(live: LiveServer, service: str, key: tuple[str, str], token: str | None = None):
    return boto3.client(
        service,
        endpoint_url=live.aws_url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def code_of(call) -> str | None:
    try:
        call()
    except ClientError as err:
        return err.response["Error"]["Code"]
    return None


@pytest.fixture(scope="module")
def teams(iam_server: IamServer) -> dict[str, dict[str, str]]:
    """A bucket (with an object), a log group and a queue per team, made by the admin."""
    live = iam_server.live
    admin = {s: live.aws(s) for s in ("s3", "logs", "sqs")}
    tag = uuid.uuid4().hex[:6]
    made = {}
    for team in ("a", "b"):
        name = f"{team}-{tag}"
        admin["s3"].create_bucket(Bucket=name)
        admin["s3"].put_object(Bucket=name, Key="dags/own.py", Body=f"# {team}\n".encode())
        admin["logs"].create_log_group(logGroupName=name)
        url = admin["sqs"].create_queue(QueueName=name)["QueueUrl"]
        made[team] = {"bucket": name, "group": name, "queue": url}
    return made


def test_alice_works_on_her_own_bucket_log_group_and_queue(iam_server, teams):
    live, own = iam_server.live, teams["a"]
    s3 = aws(live, "s3", USER_KEYS["alice"])
    s3.put_object(Bucket=own["bucket"], Key="dags/new.py", Body=b"# new\n")
    assert s3.get_object(Bucket=own["bucket"], Key="dags/new.py")["Body"].read() == b"# new\n"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=own["bucket"])["Contents"]]
    assert "dags/own.py" in keys
    s3.delete_object(Bucket=own["bucket"], Key="dags/new.py")

    logs = aws(live, "logs", USER_KEYS["alice"])
    logs.create_log_stream(logGroupName=own["group"], logStreamName="s")
    logs.put_log_events(
        logGroupName=own["group"],
        logStreamName="s",
        logEvents=[{"timestamp": 1_700_000_000_000, "message": "hello"}],
    )
    sqs = aws(live, "sqs", USER_KEYS["alice"])
    sqs.send_message(QueueUrl=own["queue"], MessageBody="hi")
    assert sqs.get_queue_url(QueueName=own["group"])["QueueUrl"] == own["queue"]


def test_an_unsigned_s3_payload_is_accepted_with_a_signed_request(iam_server, teams):
    live, own = iam_server.live, teams["a"]
    s3 = boto3.client(
        "s3",
        endpoint_url=live.aws_url,
        region_name=REGION,
        aws_access_key_id=USER_KEYS["alice"][0],
        aws_secret_access_key=USER_KEYS["alice"][1],
        config=Config(s3={"addressing_style": "path", "payload_signing_enabled": False}),
    )
    s3.put_object(Bucket=own["bucket"], Key="unsigned.txt", Body=b"body")
    assert s3.get_object(Bucket=own["bucket"], Key="unsigned.txt")["Body"].read() == b"body"
    assert code_of(
        lambda: s3.put_object(Bucket=teams["b"]["bucket"], Key="unsigned.txt", Body=b"x")
    ) == ("AccessDenied")


def test_alice_is_denied_on_bobs_bucket_and_nothing_changes(iam_server, teams):
    live, bob = iam_server.live, teams["b"]
    s3 = aws(live, "s3", USER_KEYS["alice"])
    bucket = bob["bucket"]
    calls = {
        "GetObject": lambda: s3.get_object(Bucket=bucket, Key="dags/own.py"),
        "HeadObject": lambda: s3.head_object(Bucket=bucket, Key="dags/own.py"),
        "PutObject": lambda: s3.put_object(Bucket=bucket, Key="dags/own.py", Body=b"evil"),
        "ListObjectsV2": lambda: s3.list_objects_v2(Bucket=bucket),
        "DeleteObject": lambda: s3.delete_object(Bucket=bucket, Key="dags/own.py"),
        "DeleteObjects": lambda: s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": "dags/own.py"}]}
        ),
        "CopyObject": lambda: s3.copy_object(
            Bucket=teams["a"]["bucket"], Key="stolen.py", CopySource=f"{bucket}/dags/own.py"
        ),
        "PutBucketNotificationConfiguration": lambda: s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={}
        ),
        "DeleteBucket": lambda: s3.delete_bucket(Bucket=bucket),
        "ListBuckets": lambda: s3.list_buckets(),
    }
    refused = {name: code_of(call) for name, call in calls.items()}
    assert refused == {name: "AccessDenied" if name != "HeadObject" else "403" for name in calls}
    body = live.aws("s3").get_object(Bucket=bucket, Key="dags/own.py")["Body"].read()
    assert body == b"# b\n"


def test_alice_is_denied_on_bobs_log_group_and_queue(iam_server, teams):
    live, bob = iam_server.live, teams["b"]
    logs = aws(live, "logs", USER_KEYS["alice"])
    assert code_of(lambda: logs.delete_log_group(logGroupName=bob["group"])) == (
        "AccessDeniedException"
    )
    assert code_of(
        lambda: logs.create_log_stream(logGroupName=bob["group"], logStreamName="x")
    ) == ("AccessDeniedException")
    assert live.aws("logs").describe_log_groups(logGroupNamePrefix=bob["group"])["logGroups"]

    sqs = aws(live, "sqs", USER_KEYS["alice"])
    for call in (
        lambda: sqs.send_message(QueueUrl=bob["queue"], MessageBody="evil"),
        lambda: sqs.receive_message(QueueUrl=bob["queue"]),
        lambda: sqs.purge_queue(QueueUrl=bob["queue"]),
        lambda: sqs.delete_queue(QueueUrl=bob["queue"]),
    ):
        assert code_of(call) == "AccessDeniedException"
    assert live.aws("sqs").get_queue_url(QueueName=bob["group"])["QueueUrl"] == bob["queue"]
    assert code_of(lambda: aws(live, "iam", USER_KEYS["alice"]).list_roles()) == "AccessDenied"
    ec2 = aws(live, "ec2", USER_KEYS["alice"])
    assert code_of(lambda: ec2.create_vpc(CidrBlock="10.9.0.0/16")) == "UnauthorizedOperation"


def test_a_bucket_policy_can_share_a_bucket(iam_server, teams):
    live, own = iam_server.live, teams["a"]
    bob = aws(live, "s3", USER_KEYS["bob"])
    read = lambda: bob.get_object(Bucket=own["bucket"], Key="dags/own.py")  # noqa: E731
    assert code_of(read) == "AccessDenied"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{own['bucket']}/dags/*",
            }
        ],
    }
    alice = aws(live, "s3", USER_KEYS["alice"])
    alice.put_bucket_policy(Bucket=own["bucket"], Policy=json.dumps(policy))
    try:
        assert code_of(read) is None
        assert code_of(lambda: bob.list_objects_v2(Bucket=own["bucket"])) == "AccessDenied"
    finally:
        alice.delete_bucket_policy(Bucket=own["bucket"])
    assert code_of(read) == "AccessDenied"


def test_a_role_session_acts_with_its_roles_policies(iam_server, teams):
    live = iam_server.live
    s3 = aws(live, "s3", ROLE_KEY)
    # The example config's deployer key is a session of team-a-deployer (tag team=a).
    assert code_of(lambda: s3.list_objects_v2(Bucket=teams["a"]["bucket"])) is None
    assert code_of(lambda: s3.list_objects_v2(Bucket=teams["b"]["bucket"])) == "AccessDenied"


def test_forged_unknown_and_unsigned_requests_are_refused(iam_server, teams):
    live = iam_server.live
    expected = {
        "s3": "InvalidAccessKeyId",
        "logs": "UnrecognizedClientException",
        "iam": "InvalidClientTokenId",
        "sts": "InvalidClientTokenId",
        "ec2": "AuthFailure",
        "cloudformation": "InvalidClientTokenId",
        "kms": "UnrecognizedClientException",
    }
    calls = {
        "s3": lambda c: c.list_objects_v2(Bucket=teams["b"]["bucket"]),
        "logs": lambda c: c.delete_log_group(logGroupName=teams["b"]["group"]),
        "iam": lambda c: c.list_roles(),
        "sts": lambda c: c.get_caller_identity(),
        "ec2": lambda c: c.describe_vpcs(),
        "cloudformation": lambda c: c.list_stacks(),
        "kms": lambda c: c.list_keys(),
    }
    found = {s: code_of(lambda s=s: calls[s](aws(live, s, FORGED))) for s in calls}
    assert found == expected
    # A known key with a wrong secret: the signature does not match.
    wrong = (USER_KEYS["alice"][0], "not-alices-secret-at-all-00000000000000")
    assert code_of(lambda: calls["s3"](aws(live, "s3", wrong))) == "SignatureDoesNotMatch"
    assert code_of(lambda: calls["iam"](aws(live, "iam", wrong))) == "SignatureDoesNotMatch"
    assert code_of(lambda: calls["logs"](aws(live, "logs", wrong))) == ("InvalidSignatureException")
    # No signature at all.
    unsigned = urllib.request.Request(f"{live.aws_url}/{teams['b']['bucket']}/dags/own.py")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=5)
    assert refused.value.code == 403
    assert b"<Code>AccessDenied</Code>" in refused.value.read()
    assert live.aws("logs").describe_log_groups(logGroupNamePrefix=teams["b"]["group"])["logGroups"]


@pytest.mark.parametrize("version", ["s3", "s3v4"], ids=["sigv2", "sigv4"])
def test_presigned_urls_are_checked(iam_server, teams, version):
    live = iam_server.live

    def presign(key: tuple[str, str], bucket: str) -> str:
        client = boto3.client(
            "s3",
            endpoint_url=live.aws_url,
            region_name=REGION,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=Config(signature_version=version, s3={"addressing_style": "path"}),
        )
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "dags/own.py"}
        )

    alice, own, theirs = USER_KEYS["alice"], teams["a"]["bucket"], teams["b"]["bucket"]
    with urllib.request.urlopen(presign(alice, own), timeout=5) as answer:
        assert answer.read() == b"# a\n"
    for url, code in (
        (presign(alice, theirs), "AccessDenied"),
        (
            presign((alice[0], "a-wrong-secret-000000000000000000000000"), own),
            "SignatureDoesNotMatch",
        ),
        (presign(FORGED, own), "InvalidAccessKeyId"),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert f"<Code>{code}</Code>".encode() in refused.value.read()


def test_the_emulators_back_doors_are_closed(iam_server, teams):
    live = iam_server.live
    admin = live.admin_key()
    for method, path in (("POST", "/moto-api/reset"), ("GET", "/moto-api/data.json")):
        for headers in ({}, sign(method, live.aws_url + path, admin)):
            request = urllib.request.Request(live.aws_url + path, method=method, headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 403
    names = {b["Name"] for b in live.aws("s3").list_buckets()["Buckets"]}
    assert {teams["a"]["bucket"], teams["b"]["bucket"]} <= names


def test_the_aws_cli_as_alice(iam_server, teams, tmp_path: Path):
    live = iam_server.live
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=USER_KEYS["alice"][0],
        AWS_SECRET_ACCESS_KEY=USER_KEYS["alice"][1],
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    dag = tmp_path / "dag.py"
    dag.write_text("# from the cli\n")

    def cli(*args: str, key: tuple[str, str] | None = None):
        run_env = dict(env)
        if key:
            run_env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
        import subprocess
        import sys

        return subprocess.run(
            [str(Path(sys.executable).with_name("aws")), "--endpoint-url", live.aws_url, *args],
            env=run_env,
            capture_output=True,
            text=True,
        )

    mine = cli("s3", "cp", str(dag), f"s3://{teams['a']['bucket']}/dags/cli.py")
    assert mine.returncode == 0, mine.stderr
    theirs = cli("s3", "cp", str(dag), f"s3://{teams['b']['bucket']}/dags/cli.py")
    assert theirs.returncode != 0 and "AccessDenied" in theirs.stderr
    forged = cli("s3", "ls", f"s3://{teams['a']['bucket']}", key=FORGED)
    assert forged.returncode != 0 and "InvalidAccessKeyId" in forged.stderr
    logs = cli("logs", "delete-log-group", "--log-group-name", teams["b"]["group"])
    assert logs.returncode != 0 and "AccessDeniedException" in logs.stderr


def test_an_environment_reads_its_bucket_as_its_execution_role(iam_server):
    live = iam_server.live
    admin = iam_server.admin()
    params = make_prerequisites(live)
    readable = params["SourceBucketArn"].rpartition(":")[2]
    other = make_prerequisites(live)["SourceBucketArn"].rpartition(":")[2]
    live.aws("s3").put_object(Bucket=other, Key="dags/secret.py", Body=b"# not yours\n")
    # The role may read `readable` only; the environment names `other`.
    role = execution_role(live, f"MWAA-Execution-{uuid.uuid4().hex[:6]}", readable)
    name = f"a-role-{uuid.uuid4().hex[:6]}"
    admin.create_environment(
        Name=name,
        **{**params, "ExecutionRoleArn": role, "SourceBucketArn": f"arn:aws:s3:::{other}"},
        Tags={"team": "a"},
    )
    env = wait_for_status(admin, name, {"CREATE_FAILED", "AVAILABLE"})
    assert env["Status"] == "CREATE_FAILED"
    error = env["LastUpdate"]["Error"]
    assert error["ErrorCode"] == "INCORRECT_CONFIGURATION"
    assert error["ErrorMessage"].startswith(
        "You may need to check the execution role permissions policy for your environment"
    )
    assert "s3:ListBucket" in error["ErrorMessage"]
    dags = live.data_dir / "environments" / name / "dags"
    assert not dags.exists() or not any(dags.rglob("*"))

    # The same role on its own bucket works.
    live.aws("s3").put_object(Bucket=readable, Key="dags/mine.py", Body=b"# mine\n")
    good = f"a-role-{uuid.uuid4().hex[:6]}"
    admin.create_environment(Name=good, **{**params, "ExecutionRoleArn": role}, Tags={"team": "a"})
    assert wait_for_status(admin, good, {"CREATE_FAILED", "AVAILABLE"})["Status"] == "AVAILABLE"
    assert (live.data_dir / "environments" / good / "dags" / "mine.py").read_bytes() == b"# mine\n"


def test_sts_names_the_signer_and_guards_role_sessions(iam_server, teams):
    live = iam_server.live
    alice_sts = aws(live, "sts", USER_KEYS["alice"])
    assert alice_sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    role = execution_role(live, f"MWAA-Execution-{uuid.uuid4().hex[:6]}", teams["b"]["bucket"])
    # The execution role trusts the Airflow services only: alice may not become it.
    assert code_of(lambda: alice_sts.assume_role(RoleArn=role, RoleSessionName="steal")) == (
        "AccessDenied"
    )
    # Airdock's admin acts as the MWAA service; the session has the role's rights, no more.
    granted = live.aws("sts").assume_role(RoleArn=role, RoleSessionName="airdock")["Credentials"]
    key = (granted["AccessKeyId"], granted["SecretAccessKey"])
    s3 = aws(live, "s3", key, granted["SessionToken"])
    assert s3.get_object(Bucket=teams["b"]["bucket"], Key="dags/own.py")["Body"].read()
    assert code_of(lambda: s3.list_objects_v2(Bucket=teams["a"]["bucket"])) == "AccessDenied"
    assert code_of(lambda: aws(live, "s3", key).list_buckets()) == "InvalidAccessKeyId"
    assert code_of(lambda: aws(live, "s3", key, "not-the-token").list_buckets()) == "InvalidToken"
    session = aws(live, "sts", key, granted["SessionToken"]).get_caller_identity()
    assert session["Arn"].endswith(f":assumed-role/{role.rpartition('/')[2]}/airdock")
