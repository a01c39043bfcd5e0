#!/usr/bin/env python3
"""API throughput and latency: get_environment and list_environments with 100 environments.

Each operation runs with 1 boto3 client and with 8 client processes, several rounds, and the
median is reported. The baseline, measured in the same run with the same clients, is a bare
HTTP GET of the health route: the floor set by the HTTP stack, not by Airdock's own work.

    .venv/bin/python scripts/bench_api.py [--seconds 3] [--rounds 3] [--environments 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib


def _mwaa_factory(endpoints: dict, admin: tuple[str, str]):
    def make():
        import boto3
        from botocore.config import Config

        return boto3.client(
            "mwaa",
            endpoint_url=endpoints["mwaa_endpoint"],
            region_name=endpoints["region"],
            aws_access_key_id=admin[0],
            aws_secret_access_key=admin[1],
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )

    return make


def make_get(endpoints, admin, name):
    factory = _mwaa_factory(endpoints, admin)
    return lambda: (lambda c: lambda: c.get_environment(Name=name))(factory())


def make_list(endpoints, admin):
    factory = _mwaa_factory(endpoints, admin)
    return lambda: (lambda c: lambda: c.list_environments(MaxResults=25))(factory())


def make_health(endpoints):
    def make():
        import urllib3

        pool = urllib3.PoolManager(maxsize=1)
        url = endpoints["mwaa_endpoint"] + "/_airdock/health"
        return lambda: pool.request("GET", url)

    return make


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--environments", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve-arg", action="append", default=[], help="extra serve flag")
    args = parser.parse_args()

    with benchlib.live_server(*args.serve_arg) as (process, endpoints, data):
        admin_data = json.loads((data / "admin.json").read_text())
        admin = (admin_data["access_key_id"], admin_data["secret_access_key"])
        setup = _mwaa_factory(endpoints, admin)()
        params = {
            "ExecutionRoleArn": "arn:aws:iam::123456789012:role/bench",
            "SourceBucketArn": "arn:aws:s3:::bench",
            "DagS3Path": "dags",
            "NetworkConfiguration": {
                "SubnetIds": ["subnet-1", "subnet-2"],
                "SecurityGroupIds": ["sg-1"],
            },
        }
        for i in range(args.environments):
            setup.create_environment(Name=f"bench-{i:03d}", **params, Tags={"team": str(i % 4)})
        time.sleep(2)
        idle_rss = benchlib.rss_mb(process.pid)

        cases = [
            ("baseline: GET /_airdock/health", make_health(endpoints)),
            ("get_environment", make_get(endpoints, admin, "bench-050")),
            ("list_environments (25/page)", make_list(endpoints, admin)),
        ]
        rows = []
        baseline: dict[int, float] = {}
        for label, factory in cases:
            for clients in (1, args.clients):
                rounds = [
                    benchlib.run_clients(factory, clients, args.seconds) for _ in range(args.rounds)
                ]
                result = benchlib.median_of(rounds)
                if label.startswith("baseline"):
                    baseline[clients] = result["rate"]
                ratio = result["rate"] / baseline[clients]
                rows.append(
                    [
                        label,
                        clients,
                        f"{result['rate']:.0f}",
                        f"{result['p50_ms']:.2f}",
                        f"{result['p99_ms']:.2f}",
                        f"{ratio:.2f}",
                    ]
                )
        busy_rss = benchlib.rss_mb(process.pid)

    benchlib.print_table(
        f"Airdock API, {args.environments} environments, "
        f"median of {args.rounds} x {args.seconds:.0f}s ({benchlib.machine_line()})",
        ["operation", "clients", "calls/s", "p50 ms", "p99 ms", "vs baseline"],
        rows,
    )
    print(
        f"\nserver RSS: idle {idle_rss:.0f} MB, after load {busy_rss:.0f} MB "
        "(control plane only; the embedded AWS runs in its own process)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
