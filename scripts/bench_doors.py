#!/usr/bin/env python3
"""InvokeRestApi `GET /dags` through Airdock against a direct call to the same Airflow API.

Both sides run in the same loop, interleaved call by call, on one environment:

- *through Airdock*: boto3's `mwaa` client, `invoke_rest_api(Path="/dags", Method="GET")`,
  signed with SigV4, authorized by IAM, mapped to the Admin role and forwarded to Airflow;
- *direct*: the same `GET /api/v2/dags` (or `/api/v1/dags` on 2.x) to the environment's
  Airflow API on loopback, with a kept-alive httpx client and the same Admin user's
  credentials (a JWT on 3.x, a session cookie on 2.x).

It prints p50, p99 and the mean of each, and the ratio Airdock/direct (target: at most 1.3 at
p50). By default it starts its own `airdock serve` with Airflow and one environment (minutes
on a loaded machine); `--data-dir DIR --environment NAME` measures an environment of a server
already running there instead.

    .venv/bin/python scripts/bench_doors.py [--calls 300] [--version 3.0.6]
    .venv/bin/python scripts/bench_doors.py --data-dir .airdock --environment demo
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
from bench_lifecycle import clients, prerequisites
from bench_runtime import RUNTIME_POLICY, create_available

from controlplane.clientconfig import read_endpoints
from controlplane.credentials import read_admin
from environments.airflow.access import AirflowAccess

IDENTITY = "user/airdock-admin"  # the bootstrap admin, as the MWAA API names it


def measure(data_dir: Path, name: str, calls: int) -> None:
    endpoints = read_endpoints(data_dir)
    admin = read_admin(data_dir)
    mwaa = boto3.client(
        "mwaa",
        endpoint_url=endpoints.mwaa_endpoint,
        region_name=endpoints.region,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
    )
    access = AirflowAccess(data_dir)
    airflow = access.endpoint(name)
    headers = access.headers_for(name, IDENTITY, "Admin")
    direct = httpx.Client(base_url=airflow.base_url + airflow.api_root, headers=headers)

    def through_airdock() -> None:
        answer = mwaa.invoke_rest_api(Name=name, Path="/dags", Method="GET")
        assert answer["RestApiStatusCode"] == 200

    def straight() -> None:
        response = direct.get("/dags")
        assert response.status_code == 200, response.text[:200]

    for _ in range(10):  # warm both paths: connections, the Airflow user, the JWT
        through_airdock()
        straight()
    timings: dict[str, list[float]] = {"airdock": [], "direct": []}
    for i in range(calls):
        order = (("airdock", through_airdock), ("direct", straight))
        for label, call in order if i % 2 == 0 else reversed(order):
            start = time.perf_counter()
            call()
            timings[label].append((time.perf_counter() - start) * 1000)
    direct.close()
    access.close()

    def row(label: str, values: list[float]) -> list[object]:
        return [
            label,
            f"{benchlib.percentile(values, 0.5):.1f}",
            f"{benchlib.percentile(values, 0.99):.1f}",
            f"{statistics.mean(values):.1f}",
        ]

    base, ours = timings["direct"], timings["airdock"]
    ratio = [
        "Airdock / direct",
        f"{benchlib.percentile(ours, 0.5) / benchlib.percentile(base, 0.5):.2f}x",
        f"{benchlib.percentile(ours, 0.99) / benchlib.percentile(base, 0.99):.2f}x",
        f"{statistics.mean(ours) / statistics.mean(base):.2f}x",
    ]
    benchlib.print_table(
        f"GET /dags, {calls} calls each, interleaved, Airflow {airflow.major}.x "
        f"({benchlib.machine_line()}); target: Airdock / direct <= 1.3x",
        ["path", "p50 ms", "p99 ms", "mean ms"],
        [row("InvokeRestApi through Airdock (boto3)", ours), row("direct to Airflow", base), ratio],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side")
    parser.add_argument("--version", default="3.0.6", help="Airflow version of the environment")
    parser.add_argument("--data-dir", type=Path, help="measure a running server's environment")
    parser.add_argument("--environment", help="with --data-dir: the environment's name")
    args = parser.parse_args()
    if args.data_dir is not None:
        if not args.environment:
            parser.error("--data-dir needs --environment")
        measure(args.data_dir.resolve(), args.environment, args.calls)
        return 0
    # The virtualenv comes from the uv cache the tests fill, as in bench_runtime.py.
    os.environ.setdefault(
        "AIRDOCK_UV_CACHE_DIR", str(Path.home() / ".cache" / "airdock-tests" / "uv")
    )
    with contextlib.ExitStack() as stack:
        _, endpoints, data_dir = stack.enter_context(
            # With Airflow, the server also starts its PostgreSQL: minutes on a busy machine.
            benchlib.live_server(start_timeout=300)
        )
        mwaa, aws = clients(endpoints, read_admin(data_dir))
        params = prerequisites(aws)
        aws("iam").put_role_policy(
            RoleName="bench-exec", PolicyName="runtime", PolicyDocument=RUNTIME_POLICY
        )
        print(f"creating an Airflow {args.version} environment ...", flush=True)
        seconds = create_available(mwaa, {**params, "AirflowVersion": args.version}, "doors")
        print(f"AVAILABLE after {seconds:.0f} s", flush=True)
        measure(data_dir, "doors", args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
