"""The AWS CLI, configured only through the files `airdock serve` writes."""

from __future__ import annotations

import json

from tests.conftest import wait_for_status


def test_cli_lists_creates_and_reads(server, prerequisites, env_name):
    listed = json.loads(server.aws_cli("mwaa", "list-environments").stdout)
    assert "Environments" in listed
    created = server.aws_cli(
        "mwaa",
        "create-environment",
        "--name",
        env_name,
        "--execution-role-arn",
        prerequisites["ExecutionRoleArn"],
        "--source-bucket-arn",
        prerequisites["SourceBucketArn"],
        "--dag-s3-path",
        "dags",
        "--network-configuration",
        json.dumps(prerequisites["NetworkConfiguration"]),
        "--tags",
        "team=cli",
    )
    assert json.loads(created.stdout)["Arn"].endswith(f"environment/{env_name}")
    wait_for_status(server.mwaa(), env_name, {"AVAILABLE"})
    env = json.loads(server.aws_cli("mwaa", "get-environment", "--name", env_name).stdout)
    assert env["Environment"]["Tags"] == {"team": "cli"}


def test_cli_reports_validation_errors(server):
    failed = server.aws_cli("mwaa", "get-environment", "--name", "no-such-env", check=False)
    assert failed.returncode != 0
    assert "ResourceNotFoundException" in failed.stderr


def test_cli_reaches_the_embedded_aws(server):
    made = server.aws_cli("s3", "mb", "s3://cli-made-bucket")
    assert "cli-made-bucket" in made.stdout
    listed = server.aws_cli("s3", "ls")
    assert "cli-made-bucket" in listed.stdout


def test_cli_reaches_every_embedded_service(server):
    for args in (
        ("logs", "describe-log-groups"),
        ("iam", "list-roles"),
        ("ec2", "describe-vpcs"),
        ("kms", "list-keys"),
        ("cloudwatch", "list-metrics"),
        ("cloudformation", "list-stacks"),
        ("sts", "get-caller-identity"),
    ):
        done = server.aws_cli(*args, check=False)
        assert done.returncode == 0, (args, done.stderr)

    # AWS CLI v1 forces https://queue.amazonaws.com for SQS in us-east-1 unless --endpoint-url
    # is given on the command line, whatever the config file says.
    done = server.aws_cli("sqs", "list-queues", "--endpoint-url", server.aws_url, check=False)
    assert done.returncode == 0, done.stderr
