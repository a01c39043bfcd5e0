"""`airdock infra up|down` against the embedded AWS of a live server.

The stack of infra/prerequisites.yaml must satisfy the reconciler's prerequisite checks as it
comes out of moto, so an environment created from the printed arguments becomes AVAILABLE.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from controlplane.cli import build_parser
from tests.conftest import LiveServer, wait_for_status, wait_gone

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "prerequisites.yaml"


def airdock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command without a new interpreter, for the cases that need no subprocess."""
    parsed = build_parser().parse_args(list(args))
    status = parsed.func(parsed)
    out, err = capsys.readouterr()
    return status, out, err


def up(server: LiveServer, name: str, *extra: str) -> subprocess.CompletedProcess:
    result = airdock(
        "infra", "up", "--data-dir", str(server.data_dir), "--environment-name", name, *extra
    )
    assert result.returncode == 0, result.stderr
    return result


def down(server: LiveServer, name: str) -> subprocess.CompletedProcess:
    result = airdock(
        "infra", "down", "--data-dir", str(server.data_dir), "--environment-name", name
    )
    assert result.returncode == 0, result.stderr
    return result


def stack_outputs(server: LiveServer, stack: str) -> dict[str, str]:
    # By name: moto re-creates resources when a deleted stack is described by its id.
    found = server.aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in found["Outputs"]}


@pytest.fixture(scope="module")
def deployed(server: LiveServer):
    """One stack for the module, made by `airdock infra up --output json`."""
    name = f"infra-{uuid.uuid4().hex[:8]}"
    result = up(server, name, "--output", "json")
    yield {"name": name, "stack": f"airdock-{name}", "args": json.loads(result.stdout)}
    parsed = build_parser().parse_args(
        ["infra", "down", "--data-dir", str(server.data_dir), "--environment-name", name]
    )
    assert parsed.func(parsed) == 0


def test_up_prints_create_environment_input(server, deployed):
    args, outputs = deployed["args"], stack_outputs(server, deployed["stack"])
    assert args == {
        "Name": deployed["name"],
        "ExecutionRoleArn": outputs["ExecutionRoleArn"],
        "SourceBucketArn": outputs["BucketArn"],
        "DagS3Path": "dags",
        "NetworkConfiguration": {
            "SubnetIds": outputs["SubnetIds"].split(","),
            "SecurityGroupIds": [outputs["SecurityGroupId"]],
        },
    }
    assert args["ExecutionRoleArn"] == (
        f"arn:aws:iam::123456789012:role/service-role/MWAA-Execution-{deployed['name']}"
    )


def test_stack_resources_carry_the_settings_mwaa_requires(server, deployed):
    args = deployed["args"]
    s3, iam, ec2 = server.aws("s3"), server.aws("iam"), server.aws("ec2")

    bucket = args["SourceBucketArn"].rsplit(":", 1)[-1]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
        True,
    )
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    role_name = args["ExecutionRoleArn"].rsplit("/", 1)[-1]
    role = iam.get_role(RoleName=role_name)["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert set(trust["Principal"]["Service"]) == {
        "airflow.amazonaws.com",
        "airflow-env.amazonaws.com",
    }
    policy = iam.get_role_policy(RoleName=role_name, PolicyName="mwaa-execution")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    name = deployed["name"]
    assert statements["PublishEnvironmentMetrics"]["Resource"] == (
        f"arn:aws:airflow:us-east-1:123456789012:environment/{name}"
    )
    assert statements["WriteTheEnvironmentLogs"]["Resource"] == (
        f"arn:aws:logs:us-east-1:123456789012:log-group:airflow-{name}-*"
    )
    assert statements["ReadTheDagBucket"]["Resource"] == [
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    ]
    assert statements["UseTheCeleryQueue"]["Resource"] == "arn:aws:sqs:us-east-1:*:airflow-celery-*"
    kms = statements["UseTheAwsOwnedKeyThroughSqs"]
    assert kms["Condition"] == {"StringLike": {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}}

    subnet_ids = args["NetworkConfiguration"]["SubnetIds"]
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert len({s["VpcId"] for s in subnets}) == 1
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    vpc_id = subnets[0]["VpcId"]
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": subnet_ids}]
    )
    associated = {a.get("SubnetId") for t in tables["RouteTables"] for a in t["Associations"]}
    assert associated >= set(subnet_ids)
    assert len(tables["RouteTables"]) == 2  # one per zone
    for table in tables["RouteTables"]:  # private: no route to an internet gateway
        assert not any(r.get("GatewayId", "").startswith("igw-") for r in table["Routes"])
    dns = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
    assert dns["EnableDnsHostnames"]["Value"] is True

    (group,) = ec2.describe_security_groups(
        GroupIds=args["NetworkConfiguration"]["SecurityGroupIds"]
    )["SecurityGroups"]
    assert group["VpcId"] == vpc_id
    assert [
        (rule["IpProtocol"], [pair["GroupId"] for pair in rule["UserIdGroupPairs"]])
        for rule in group["IpPermissions"]
    ] == [("-1", [group["GroupId"]])]
    assert any(
        rule["IpProtocol"] == "-1" and {"CidrIp": "0.0.0.0/0"} in rule["IpRanges"]
        for rule in group["IpPermissionsEgress"]
    )
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    services = {e["ServiceName"] for e in endpoints["VpcEndpoints"]}
    assert {"com.amazonaws.us-east-1.s3", "com.amazonaws.us-east-1.sqs"} <= services


def test_an_environment_from_the_output_becomes_available(server, deployed):
    mwaa = server.mwaa()
    mwaa.create_environment(**deployed["args"])
    env = wait_for_status(mwaa, deployed["name"], {"AVAILABLE", "CREATE_FAILED"}, timeout=60)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
    mwaa.delete_environment(Name=deployed["name"])
    wait_gone(mwaa, deployed["name"], timeout=60)


def test_up_again_changes_nothing(server, deployed):
    iam, ec2, s3 = server.aws("iam"), server.aws("ec2"), server.aws("s3")

    def inventory():
        return (
            sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
            sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
            sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        )

    before = inventory()
    again = up(server, deployed["name"], "--output", "json")
    assert json.loads(again.stdout) == deployed["args"]
    assert f"stack {deployed['stack']}: unchanged" in again.stderr
    # Without --environment-name the stack keeps its own.
    by_stack = airdock(
        "infra", "up", "--data-dir", str(server.data_dir), "--stack", deployed["stack"],
        "--output", "json",
    )  # fmt: skip
    assert by_stack.returncode == 0, by_stack.stderr
    assert json.loads(by_stack.stdout) == deployed["args"]
    assert inventory() == before


def test_text_output_is_a_working_aws_cli_session(server, capsys):
    """The printed lines, pasted into a shell, create the environment; then `down` cleans up."""
    name = f"infra-{uuid.uuid4().hex[:8]}"
    text = up(server, name).stdout
    script = text[text.index("export AWS_CONFIG_FILE=") :]
    assert "aws mwaa create-environment" in script
    shell_env = {**server.cli_env(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    ran = subprocess.run(
        ["bash", "-euc", script], env=shell_env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    mwaa = server.mwaa()
    assert wait_for_status(mwaa, name, {"AVAILABLE"}, timeout=60)["Name"] == name
    # While the environment runs with the stack's role and subnets, down refuses.
    refused = airdock(
        "infra", "down", "--data-dir", str(server.data_dir), "--environment-name", name
    )  # fmt: skip
    assert refused.returncode == 2
    assert f"environment(s) {name} use the role" in refused.stderr and "--force" in refused.stderr
    assert stack_outputs(server, f"airdock-{name}")  # the stack is still there
    mwaa.delete_environment(Name=name)
    wait_gone(mwaa, name, timeout=60)

    outputs = stack_outputs(server, f"airdock-{name}")
    gone = down(server, name).stdout
    assert f"kept AWS::S3::Bucket {outputs['BucketName']}" in gone
    cf, ec2, iam = server.aws("cloudformation"), server.aws("ec2"), server.aws("iam")
    with pytest.raises(ClientError, match="does not exist"):
        cf.describe_stacks(StackName=f"airdock-{name}")
    with pytest.raises(ClientError):
        ec2.describe_vpcs(VpcIds=[outputs["VpcId"]])
    with pytest.raises(ClientError):
        iam.get_role(RoleName=f"MWAA-Execution-{name}")
    assert server.aws("s3").head_bucket(Bucket=outputs["BucketName"])  # retained on purpose
    status, out, _ = in_process(
        capsys, "infra", "down", "--data-dir", str(server.data_dir), "--environment-name", name
    )
    assert status == 0
    assert "nothing to delete" in out


def test_another_region_through_an_endpoint_url(server, capsys, monkeypatch):
    """moto's Fn::GetAZs answers us-east-1's zones anywhere; the subnets still land right."""
    name = f"infra-{uuid.uuid4().hex[:8]}"
    access, secret = server.admin_key()
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    where = ("--endpoint-url", server.aws_url, "--region", "eu-west-1")
    status, out, err = in_process(
        capsys, "infra", "up", *where, "--environment-name", name, "--output", "json",
        "--parameter", "CreateVpcEndpoints=false",
    )  # fmt: skip
    assert status == 0, err
    args = json.loads(out)
    regional = boto3.client(
        "ec2",
        endpoint_url=server.aws_url,
        region_name="eu-west-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
    )
    subnets = regional.describe_subnets(SubnetIds=args["NetworkConfiguration"]["SubnetIds"])
    zones = sorted(s["AvailabilityZone"] for s in subnets["Subnets"])
    assert zones == ["eu-west-1a", "eu-west-1b"]
    assert not regional.describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [subnets["Subnets"][0]["VpcId"]]},
                 {"Name": "vpc-endpoint-type", "Values": ["Interface"]}]
    )["VpcEndpoints"]  # fmt: skip
    status, _, err = in_process(capsys, "infra", "down", *where, "--environment-name", name)
    assert status == 0, err


def test_a_customer_managed_key_reaches_bucket_role_and_arguments(server, capsys):
    name = f"infra-{uuid.uuid4().hex[:8]}"
    key = server.aws("kms").create_key()["KeyMetadata"]["Arn"]
    where = ("--data-dir", str(server.data_dir), "--environment-name", name)
    status, out, err = in_process(
        capsys, "infra", "up", *where, "--output", "json",
        "--parameter", f"KmsKeyArn={key}", "--parameter", "CreateVpcEndpoints=false",
    )  # fmt: skip
    assert status == 0, err
    args = json.loads(out)
    assert args["KmsKey"] == key
    bucket = args["SourceBucketArn"].rsplit(":", 1)[-1]
    encryption = server.aws("s3").get_bucket_encryption(Bucket=bucket)
    by_default = encryption["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"
    ]
    assert by_default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    document = server.aws("iam").get_role_policy(
        RoleName=f"MWAA-Execution-{name}", PolicyName="mwaa-execution"
    )["PolicyDocument"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert "UseTheAwsOwnedKeyThroughSqs" not in statements
    assert statements["UseTheCustomerManagedKeyThroughSqsAndS3"]["Resource"] == key
    mwaa = server.mwaa()
    mwaa.create_environment(**args)
    env = wait_for_status(mwaa, name, {"AVAILABLE", "CREATE_FAILED"}, timeout=60)
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
    assert env["KmsKey"] == key
    mwaa.delete_environment(Name=name)
    wait_gone(mwaa, name, timeout=60)
    status, _, err = in_process(capsys, "infra", "down", *where)
    assert status == 0, err


def test_without_a_server_it_says_where_it_could_deploy(tmp_path, capsys):
    status, _, err = in_process(capsys, "infra", "up", "--data-dir", str(tmp_path / "nothing"))
    assert status == 2
    assert "no running `airdock serve`" in err
    assert "--real-aws" in err


def test_an_unknown_parameter_is_refused_before_anything_happens(server, capsys):
    name = f"infra-{uuid.uuid4().hex[:8]}"
    status, _, err = in_process(
        capsys, "infra", "up", "--data-dir", str(server.data_dir), "--environment-name", name,
        "--parameter", "VpcCidrr=10.0.0.0/16",
    )  # fmt: skip
    assert status == 1
    assert "unknown template parameter(s) VpcCidrr" in err
    with pytest.raises(ClientError, match="does not exist"):
        server.aws("cloudformation").describe_stacks(StackName=f"airdock-{name}")


def test_the_template_passes_cfn_lint():
    linter = Path(sys.executable).with_name("cfn-lint")
    command = str(linter) if linter.exists() else shutil.which("cfn-lint")
    if command is None:
        pytest.skip("cfn-lint is not installed (it belongs in the dev dependencies)")
    result = subprocess.run(
        [command, "--", str(TEMPLATE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
