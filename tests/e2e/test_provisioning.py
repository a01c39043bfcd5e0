"""Provisioning against the embedded AWS: MWAA's prerequisite checks and the resources made."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TRUST_POLICY, make_prerequisites, wait_for_status, wait_gone

OWNER_TAG = "airdock:environment"


def _failure(mwaa, name: str) -> str:
    env = wait_for_status(mwaa, name, {"CREATE_FAILED"})
    error = env["LastUpdate"]["Error"]
    assert error["ErrorCode"] == "INCORRECT_CONFIGURATION"
    assert env["LastUpdate"]["Status"] == "FAILED"
    return error["ErrorMessage"]


def test_resources_follow_the_environment(server, params, mwaa, env_name):
    logging = {
        "DagProcessingLogs": {"Enabled": True, "LogLevel": "WARNING"},
        "TaskLogs": {"Enabled": True, "LogLevel": "INFO"},
    }
    mwaa.create_environment(Name=env_name, **params(LoggingConfiguration=logging))
    env = wait_for_status(mwaa, env_name, {"AVAILABLE"})
    logs, sqs = server.aws("logs"), server.aws("sqs")
    groups = {
        g["logGroupName"]: g
        for g in logs.describe_log_groups(logGroupNamePrefix=f"airflow-{env_name}-")["logGroups"]
    }
    assert set(groups) == {f"airflow-{env_name}-DAGProcessing", f"airflow-{env_name}-Task"}
    assert all(g["retentionInDays"] == 30 for g in groups.values())
    task_arn = env["LoggingConfiguration"]["TaskLogs"]["CloudWatchLogGroupArn"]
    assert task_arn.startswith("arn:aws:logs:us-east-1:123456789012:log-group:airflow-")
    assert "CloudWatchLogGroupArn" not in env["LoggingConfiguration"]["WorkerLogs"]
    tags = logs.list_tags_log_group(logGroupName=f"airflow-{env_name}-Task")["tags"]
    assert tags[OWNER_TAG] == env["Arn"]
    queue_arn = env["CeleryExecutorQueue"]
    queue_name = queue_arn.rsplit(":", 1)[-1]
    assert queue_name.startswith("airflow-celery-")
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=queue_url)["Tags"][OWNER_TAG] == env["Arn"]

    mwaa.update_environment(
        Name=env_name,
        LoggingConfiguration={
            "DagProcessingLogs": {"Enabled": False, "LogLevel": "WARNING"},
            "WorkerLogs": {"Enabled": True, "LogLevel": "ERROR"},
        },
    )
    env = wait_for_status(mwaa, env_name, {"AVAILABLE"})
    names = {
        g["logGroupName"]
        for g in logs.describe_log_groups(logGroupNamePrefix=f"airflow-{env_name}-")["logGroups"]
    }
    assert names == {f"airflow-{env_name}-Task", f"airflow-{env_name}-Worker"}
    assert "CloudWatchLogGroupArn" in env["LoggingConfiguration"]["WorkerLogs"]

    bucket = params()["SourceBucketArn"].rsplit(":", 1)[-1]
    mwaa.delete_environment(Name=env_name)
    wait_gone(mwaa, env_name)
    assert logs.describe_log_groups(logGroupNamePrefix=f"airflow-{env_name}-")["logGroups"] == []
    assert queue_url not in sqs.list_queues().get("QueueUrls", [])
    # The user's own resources are never touched.
    server.aws("s3").head_bucket(Bucket=bucket)
    server.aws("iam").get_role(RoleName=params()["ExecutionRoleArn"].rsplit("/", 1)[-1])


def test_a_users_look_alike_log_group_is_never_deleted(server, params, mwaa, env_name):
    logs = server.aws("logs")
    logs.create_log_group(logGroupName=f"airflow-{env_name}-Worker", tags={"mine": "yes"})
    mwaa.create_environment(Name=env_name, **params())
    wait_for_status(mwaa, env_name, {"AVAILABLE"})
    mwaa.delete_environment(Name=env_name)
    wait_gone(mwaa, env_name)
    left = logs.describe_log_groups(logGroupNamePrefix=f"airflow-{env_name}-")["logGroups"]
    assert [g["logGroupName"] for g in left] == [f"airflow-{env_name}-Worker"]


def test_missing_bucket(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params(SourceBucketArn="arn:aws:s3:::nobody-made-me"))
    assert "nobody-made-me" in _failure(mwaa, env_name)


def test_unversioned_or_public_bucket(server, params, mwaa, env_name):
    s3 = server.aws("s3")
    s3.create_bucket(Bucket=f"{env_name}-plain")
    mwaa.create_environment(
        Name=env_name, **params(SourceBucketArn=f"arn:aws:s3:::{env_name}-plain")
    )
    assert "versioning" in _failure(mwaa, env_name)
    s3.put_bucket_versioning(
        Bucket=f"{env_name}-plain", VersioningConfiguration={"Status": "Enabled"}
    )
    mwaa.delete_environment(Name=env_name)
    wait_gone(mwaa, env_name)
    mwaa.create_environment(
        Name=env_name, **params(SourceBucketArn=f"arn:aws:s3:::{env_name}-plain")
    )
    assert "public access" in _failure(mwaa, env_name)


def test_bucket_in_another_region(server, params, mwaa, env_name):
    server.aws("s3").create_bucket(
        Bucket=f"{env_name}-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    mwaa.create_environment(Name=env_name, **params(SourceBucketArn=f"arn:aws:s3:::{env_name}-eu"))
    assert "eu-west-1" in _failure(mwaa, env_name)


def test_role_missing_or_untrusting(server, params, mwaa, env_name):
    mwaa.create_environment(
        Name=env_name, **params(ExecutionRoleArn="arn:aws:iam::123456789012:role/ghost")
    )
    assert "ghost" in _failure(mwaa, env_name)
    lambda_only = {
        **TRUST_POLICY,
        "Statement": [
            {**TRUST_POLICY["Statement"][0], "Principal": {"Service": "lambda.amazonaws.com"}}
        ],
    }
    role = server.aws("iam").create_role(
        RoleName=f"{env_name}-lambda", AssumeRolePolicyDocument=json.dumps(lambda_only)
    )["Role"]["Arn"]
    other = f"{env_name}-b"
    mwaa.create_environment(Name=other, **params(ExecutionRoleArn=role))
    assert "airflow.amazonaws.com" in _failure(mwaa, other)


def test_network_rules(server, params, mwaa, env_name):
    ec2 = server.aws("ec2")
    network = params()["NetworkConfiguration"]
    vpc = ec2.describe_subnets(SubnetIds=network["SubnetIds"])["Subnets"][0]["VpcId"]
    same_zone = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.9.0/24", AvailabilityZone="us-east-1a")
    bad = {
        "SubnetIds": [network["SubnetIds"][0], same_zone["Subnet"]["SubnetId"]],
        "SecurityGroupIds": network["SecurityGroupIds"],
    }
    mwaa.create_environment(Name=env_name, **params(NetworkConfiguration=bad))
    assert "Availability Zones" in _failure(mwaa, env_name)

    other_vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    foreign_group = ec2.create_security_group(GroupName=env_name, Description="x", VpcId=other_vpc)[
        "GroupId"
    ]
    name = f"{env_name}-sg"
    mwaa.create_environment(
        Name=name, **params(NetworkConfiguration={**network, "SecurityGroupIds": [foreign_group]})
    )
    assert "not in the subnets' VPC" in _failure(mwaa, name)

    name = f"{env_name}-nosubnet"
    mwaa.create_environment(
        Name=name,
        **params(
            NetworkConfiguration={
                **network,
                "SubnetIds": ["subnet-0missing1", network["SubnetIds"][1]],
            }
        ),
    )
    assert "subnet" in _failure(mwaa, name)


def test_kms_key_must_exist_and_be_enabled(server, params, mwaa, env_name):
    kms = server.aws("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    mwaa.create_environment(Name=env_name, **params(KmsKey=key))
    assert "Disabled" in _failure(mwaa, env_name)
    enabled = kms.create_key()["KeyMetadata"]["Arn"]
    good = f"{env_name}-ok"
    mwaa.create_environment(Name=good, **params(KmsKey=enabled))
    assert wait_for_status(mwaa, good, {"AVAILABLE"})["KmsKey"] == enabled


def test_artifacts_must_exist_at_their_versions(server, params, mwaa, env_name):
    s3 = server.aws("s3")
    bucket = params()["SourceBucketArn"].rsplit(":", 1)[-1]
    version = s3.put_object(Bucket=bucket, Key="requirements.txt", Body=b"requests\n")["VersionId"]
    mwaa.create_environment(
        Name=env_name,
        **params(
            RequirementsS3Path="requirements.txt", RequirementsS3ObjectVersion="not-a-version"
        ),
    )
    assert "requirements" in _failure(mwaa, env_name)
    good = f"{env_name}-ok"
    mwaa.create_environment(
        Name=good,
        **params(RequirementsS3Path="requirements.txt", RequirementsS3ObjectVersion=version),
    )
    wait_for_status(mwaa, good, {"AVAILABLE"})


def test_create_failed_can_be_deleted_but_not_updated(params, mwaa, env_name):
    mwaa.create_environment(Name=env_name, **params(SourceBucketArn="arn:aws:s3:::absent-bucket"))
    _failure(mwaa, env_name)
    with pytest.raises(mwaa.exceptions.ValidationException, match="CREATE_FAILED"):
        mwaa.update_environment(Name=env_name, MaxWorkers=2)
    mwaa.delete_environment(Name=env_name)
    wait_gone(mwaa, env_name)


def test_isolated_prerequisites_per_environment(server, mwaa, env_name):
    mine = make_prerequisites(server)
    mwaa.create_environment(Name=env_name, **mine)
    assert (
        wait_for_status(mwaa, env_name, {"AVAILABLE"})["SourceBucketArn"] == mine["SourceBucketArn"]
    )
