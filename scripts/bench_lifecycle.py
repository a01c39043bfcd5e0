#!/usr/bin/env python3
"""CreateEnvironment -> AVAILABLE and DeleteEnvironment -> gone, against the embedded AWS.

Measures one environment at a time (several rounds, median and p95) and 50 created at once
(time until every one is AVAILABLE, then until every one is gone). The baseline, measured in
the same run, is the same AWS work done directly with boto3 in one thread (the prerequisite
checks, five log groups and a queue, then their deletion): the floor that the AWS calls
themselves set, so the ratio shows what Airdock's orchestration adds.

    .venv/bin/python scripts/bench_lifecycle.py [--rounds 5] [--fleet 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from controlplane.clientconfig import Endpoints
from controlplane.credentials import KeyPair, read_admin
from environments.provisioning.steps.check_role import airflow_trust_policy

MODULES = ("DagProcessing", "Scheduler", "Task", "WebServer", "Worker")
EVERY_LOG = {
    m: {"Enabled": True, "LogLevel": "INFO"}
    for m in ("DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs")
}


def clients(endpoints: Endpoints, admin: KeyPair):
    def make(service: str, url: str | None):
        return boto3.client(
            service,
            endpoint_url=url,
            region_name=endpoints.region,
            aws_access_key_id=admin.access_key_id,
            aws_secret_access_key=admin.secret_access_key,
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )

    aws = endpoints.aws_endpoint
    return make("mwaa", endpoints.mwaa_endpoint), lambda s: make(s, aws)


def prerequisites(aws) -> dict:
    s3, iam, ec2 = aws("s3"), aws("iam"), aws("ec2")
    s3.create_bucket(Bucket="bench-dags")
    s3.put_bucket_versioning(Bucket="bench-dags", VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket="bench-dags",
        PublicAccessBlockConfiguration=dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
            True,
        ),
    )
    trust = json.dumps(airflow_trust_policy())
    role = iam.create_role(RoleName="bench-exec", AssumeRolePolicyDocument=trust)
    # Environments read their bucket as the execution role.
    iam.put_role_policy(
        RoleName="bench-exec",
        PolicyName="read-source-bucket",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject*", "s3:GetBucket*", "s3:List*"],
                        "Resource": ["arn:aws:s3:::bench-dags", "arn:aws:s3:::bench-dags/*"],
                    }
                ],
            }
        ),
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=z)["Subnet"][
            "SubnetId"
        ]
        for i, z in enumerate(("us-east-1a", "us-east-1b"))
    ]
    group = ec2.create_security_group(GroupName="bench", Description="b", VpcId=vpc)["GroupId"]
    return {
        "ExecutionRoleArn": role["Role"]["Arn"],
        "SourceBucketArn": "arn:aws:s3:::bench-dags",
        "DagS3Path": "dags",
        "NetworkConfiguration": {"SubnetIds": subnets, "SecurityGroupIds": [group]},
        "LoggingConfiguration": EVERY_LOG,
    }


def wait_until(check, timeout: float = 120.0, interval: float = 0.01) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(interval)
    return time.perf_counter() - start


def status(mwaa, name: str) -> str:
    try:
        return mwaa.get_environment(Name=name)["Environment"]["Status"]
    except mwaa.exceptions.ResourceNotFoundException:
        return "GONE"


def one_environment(mwaa, params: dict, name: str) -> tuple[float, float]:
    start = time.perf_counter()
    mwaa.create_environment(Name=name, **params)
    wait_until(lambda: status(mwaa, name) == "AVAILABLE")
    created = time.perf_counter() - start
    start = time.perf_counter()
    mwaa.delete_environment(Name=name)
    wait_until(lambda: status(mwaa, name) == "GONE")
    return created, time.perf_counter() - start


def fleet(mwaa_factory, params: dict, count: int) -> tuple[float, float]:
    names = [f"fleet-{i:03d}" for i in range(count)]
    pool = ThreadPoolExecutor(8)
    local = mwaa_factory()
    start = time.perf_counter()
    list(pool.map(lambda n: mwaa_factory().create_environment(Name=n, **params), names))
    wait_until(lambda: all(status(local, n) == "AVAILABLE" for n in names), interval=0.1)
    created = time.perf_counter() - start
    start = time.perf_counter()
    list(pool.map(lambda n: mwaa_factory().delete_environment(Name=n), names))
    wait_until(lambda: all(status(local, n) == "GONE" for n in names), interval=0.1)
    return created, time.perf_counter() - start


def direct_baseline(aws, params: dict, index: int) -> tuple[float, float]:
    """The same AWS calls the provisioning steps make, done directly and serially."""
    s3, iam, ec2, logs, sqs = aws("s3"), aws("iam"), aws("ec2"), aws("logs"), aws("sqs")
    start = time.perf_counter()
    s3.get_bucket_location(Bucket="bench-dags")
    s3.get_bucket_versioning(Bucket="bench-dags")
    s3.get_public_access_block(Bucket="bench-dags")
    iam.get_role(RoleName="bench-exec")
    ec2.describe_subnets(SubnetIds=params["NetworkConfiguration"]["SubnetIds"])
    ec2.describe_security_groups(GroupIds=params["NetworkConfiguration"]["SecurityGroupIds"])
    for module in MODULES:
        group = f"airflow-direct{index}-{module}"
        logs.create_log_group(logGroupName=group, tags={"k": "v"})
        logs.put_retention_policy(logGroupName=group, retentionInDays=30)
    url = sqs.create_queue(QueueName=f"airflow-celery-direct{index}")["QueueUrl"]
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    created = time.perf_counter() - start
    start = time.perf_counter()
    for module in MODULES:
        group = f"airflow-direct{index}-{module}"
        logs.list_tags_log_group(logGroupName=group)
        logs.delete_log_group(logGroupName=group)
    sqs.list_queue_tags(QueueUrl=url)
    sqs.delete_queue(QueueUrl=url)
    return created, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fleet", type=int, default=50)
    args = parser.parse_args()
    control_plane = ("--no-airflow", "--max-environments", str(args.fleet + 10))
    with benchlib.live_server(*control_plane) as (_, endpoints, data):
        admin = read_admin(data)
        mwaa, aws = clients(endpoints, admin)
        params = prerequisites(aws)
        base = [direct_baseline(aws, params, i) for i in range(args.rounds)]
        single = [one_environment(mwaa, params, f"single-{i}") for i in range(args.rounds)]
        many = fleet(lambda: clients(endpoints, admin)[0], params, args.fleet)
    # The same single-environment cycle with each environment's Airflow virtualenv built from
    # a warm package cache (the first round of a new machine fills it).
    os.environ.setdefault("AIRDOCK_UV_CACHE_DIR", str(Path.home() / ".cache/airdock-bench/uv"))
    with benchlib.live_server() as (_, endpoints, data):
        admin = read_admin(data)
        mwaa, aws = clients(endpoints, admin)
        params = prerequisites(aws)
        one_environment(mwaa, params, "warm-up")
        with_airflow = [one_environment(mwaa, params, f"af-{i}") for i in range(args.rounds)]

    def p95(values: list[float]) -> float:
        return benchlib.percentile(values, 0.95)

    base_c = statistics.median(b[0] for b in base)
    base_d = statistics.median(b[1] for b in base)
    created = [s[0] for s in single]
    deleted = [s[1] for s in single]
    rows = [
        [
            "baseline: direct boto3, create",
            "1",
            f"{base_c:.3f}",
            f"{p95([b[0] for b in base]):.3f}",
            "1.00",
        ],
        [
            "baseline: direct boto3, delete",
            "1",
            f"{base_d:.3f}",
            f"{p95([b[1] for b in base]):.3f}",
            "1.00",
        ],
        [
            "CreateEnvironment -> AVAILABLE",
            "1",
            f"{statistics.median(created):.3f}",
            f"{p95(created):.3f}",
            f"{statistics.median(created) / base_c:.2f}",
        ],
        [
            "DeleteEnvironment -> gone",
            "1",
            f"{statistics.median(deleted):.3f}",
            f"{p95(deleted):.3f}",
            f"{statistics.median(deleted) / base_d:.2f}",
        ],
        [
            f"{args.fleet} at once -> all AVAILABLE",
            str(args.fleet),
            f"{many[0]:.3f}",
            "-",
            f"{many[0] / (base_c * args.fleet):.2f}",
        ],
        [
            "CreateEnvironment -> AVAILABLE, with Airflow venv",
            "1",
            f"{statistics.median(a[0] for a in with_airflow):.3f}",
            f"{p95([a[0] for a in with_airflow]):.3f}",
            f"{statistics.median(a[0] for a in with_airflow) / base_c:.2f}",
        ],
        [
            f"{args.fleet} at once -> all gone",
            str(args.fleet),
            f"{many[1]:.3f}",
            "-",
            f"{many[1] / (base_d * args.fleet):.2f}",
        ],
    ]
    benchlib.print_table(
        f"Environment lifecycle on the embedded AWS, {args.rounds} rounds "
        f"({benchlib.machine_line()})",
        ["measure", "envs", "median s", "p95 s", "vs baseline"],
        rows,
    )
    print("\n'vs baseline' for the fleet compares with the serial direct work for that many envs.")
    print("All rows but 'with Airflow venv' run with --no-airflow: control plane and AWS only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
