#!/usr/bin/env python3
"""Memory of a whole `airdock serve` process tree at idle, per process and in total.

For every process of the tree (the supervisor, the embedded AWS, the background worker, each
API worker) it reads /proc/<pid>/smaps_rollup:

- RSS counts every page the process maps, shared or not. Summed over the tree it counts a
  page shared by five processes five times.
- PSS divides each shared page among the processes sharing it; summed over the tree it is what
  the tree really occupies. The API and background workers, the web doors and the embedded AWS
  are forked from the supervisor after it has imported everything they share, so most of
  their pages are shared.
- USS (private pages) is what stopping that one process would give back.

The work before the second reading makes a VPC and a subnet in the embedded AWS, as a user's
first hour does, then creates environments that fail their checks, which exercises all three
kinds of process.

Each configuration is measured twice: just after start, and idle again after some work
(environments created, provisioned or failed, and API calls), when the workers have warmed up.
The baseline in the same run is `--api-workers 1`.

    .venv/bin/python scripts/bench_memory.py [--workers 1,2] [--environments 20] [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from controlplane.clientconfig import Endpoints
from controlplane.credentials import read_admin


def tree_rows(supervisor: int, data: Path) -> list[tuple[str, int, dict[str, int]]]:
    recorded = json.loads((data / "run" / "parts.json").read_text())["parts"]
    names = {part["pid"]: name for name, part in recorded.items() if part["pid"]}
    names[supervisor] = "supervisor"
    rows = []
    for pid in benchlib.descendants(supervisor):
        try:
            rows.append((names.get(pid, "other"), pid, benchlib.memory_kb(pid)))
        except OSError:
            continue  # ended while we looked
    return sorted(rows, key=lambda row: row[1])


def work(endpoints: Endpoints, data: Path, environments: int, calls: int) -> None:
    import boto3
    from botocore.config import Config

    admin = read_admin(data)
    keys = {
        "region_name": endpoints.region,
        "aws_access_key_id": admin.access_key_id,
        "aws_secret_access_key": admin.secret_access_key,
    }
    mwaa = boto3.client(
        "mwaa",
        endpoint_url=endpoints.mwaa_endpoint,
        config=Config(inject_host_prefix=False),
        **keys,
    )
    # What a user's first hour asks of the embedded AWS's EC2 (a VPC for the environments,
    # and the network check of each create), which the failed creates below don't reach.
    ec2 = boto3.client("ec2", endpoint_url=endpoints.aws_endpoint, **keys)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")
    ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    # Every create ends CREATE_FAILED after the reconciler's checks.
    params = benchlib.PHANTOM_PARAMS
    for i in range(environments):
        mwaa.create_environment(Name=f"memory-{i:03d}", **params)
    for i in range(calls):
        mwaa.get_environment(Name=f"memory-{i % environments:03d}")
        mwaa.list_environments()


def measure(workers: int, args: argparse.Namespace) -> list[list[object]]:
    table = []
    with benchlib.live_server("--no-airflow", "--api-workers", str(workers)) as (
        process,
        endpoints,
        data,
    ):
        for phase in ("fresh", "after work"):
            if phase == "after work":
                work(endpoints, data, args.environments, args.calls)
            time.sleep(args.settle)
            rows = tree_rows(process.pid, data)
            for name, pid, mem in rows:
                table.append([f"{workers} API", phase, name, pid, *_mb(mem)])
            totals = {key: sum(mem[key] for _, _, mem in rows) for key in ("rss", "pss", "uss")}
            table.append(
                [f"{workers} API", phase, f"TOTAL ({len(rows)} processes)", "", *_mb(totals)]
            )
    return table


def _mb(mem: dict[str, int]) -> list[str]:
    return [f"{mem[key] / 1024:.0f}" for key in ("rss", "pss", "uss")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="API worker counts to measure")
    parser.add_argument("--environments", type=int, default=20)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="idle seconds before each measurement"
    )
    args = parser.parse_args()
    rows: list[list[object]] = []
    for workers in [int(n) for n in args.workers.split(",")]:
        rows.extend(measure(workers, args))
    benchlib.print_table(
        f"airdock serve --no-airflow, memory in MB ({benchlib.machine_line()})",
        ["config", "phase", "process", "pid", "RSS", "PSS", "USS"],
        rows,
    )
    print("\nThe tree really occupies the PSS total; the RSS total counts shared pages repeatedly.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
