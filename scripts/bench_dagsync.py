#!/usr/bin/env python3
"""DAG sync: PutObject-to-file latency, and the cost of a pass over 10,000 objects.

1. Latency, through a live `airdock serve`: an environment watches a prefix; each round puts a
   new DAG file and times until it appears in the workspace's dags/ folder. The baseline in
   the same run is PutObject followed by a direct GetObject: the round trip that any sync
   must at least make.
2. Cost: a DagSyncer over 10,000 objects (all unchanged, then with 10 changed), CPU seconds
   and peak Python memory. The baseline is the bare S3 listing of the same prefix.

    .venv/bin/python scripts/bench_dagsync.py [--rounds 30] [--objects 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchlib
from bench_lifecycle import clients, prerequisites

from controlplane.credentials import read_admin
from environments.contents.dagsync import DagSyncer
from environments.emulator.supervisor import EmbeddedAws
from environments.workspace import Workspace


def latency(rounds: int) -> tuple[list[float], list[float]]:
    with benchlib.live_server() as (_, endpoints, data):
        admin = read_admin(data)
        mwaa, aws = clients(endpoints, admin)
        params = prerequisites(aws)
        mwaa.create_environment(Name="sync", **params)
        while mwaa.get_environment(Name="sync")["Environment"]["Status"] != "AVAILABLE":
            time.sleep(0.05)
        s3 = aws("s3")
        dags = data / "environments" / "sync" / "dags"
        synced, direct = [], []
        for i in range(rounds):
            start = time.perf_counter()
            s3.put_object(Bucket="bench-dags", Key=f"dags/base_{i}.py", Body=b"# b\n")
            s3.get_object(Bucket="bench-dags", Key=f"dags/base_{i}.py")["Body"].read()
            direct.append(time.perf_counter() - start)
            target = dags / f"dag_{i}.py"
            start = time.perf_counter()
            s3.put_object(Bucket="bench-dags", Key=f"dags/dag_{i}.py", Body=b"# dag\n")
            while not target.exists():
                if time.perf_counter() - start > 30:
                    raise TimeoutError("file never arrived")
                time.sleep(0.002)
            synced.append(time.perf_counter() - start)
        return synced, direct


def cost(objects: int) -> dict[str, tuple[float, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        aws = EmbeddedAws(Path(tmp) / "aws")
        aws.start()
        try:
            s3 = boto3.client(
                "s3",
                endpoint_url=aws.endpoint,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            s3.create_bucket(Bucket="many")
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: s3.put_object(
                            Bucket="many", Key=f"dags/d{i // 100}/f{i}.py", Body=b"#\n"
                        ),
                        range(objects),
                    )
                )
            workspace = Workspace(Path(tmp) / "ws")
            workspace.create()
            syncer = DagSyncer(workspace)
            syncer.sync(s3, "many", "dags")  # first download, not measured

            def measure(action) -> tuple[float, float, float]:
                cpu, wall = time.process_time(), time.perf_counter()
                action()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                # Memory in a second run: tracing slows Python too much to time it as well.
                tracemalloc.start()
                action()
                peak = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
                return cpu, wall, peak

            def listing() -> None:
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket="many", Prefix="dags/"
                ):
                    for _ in page.get("Contents", ()):
                        pass

            def change_ten() -> None:
                for i in range(10):
                    s3.put_object(
                        Bucket="many", Key=f"dags/d0/f{i}.py", Body=f"# {time.time()}\n".encode()
                    )

            results = {"list": [], "unchanged": [], "ten": []}
            for _ in range(3):
                results["list"].append(measure(listing))
                results["unchanged"].append(measure(lambda: syncer.sync(s3, "many", "dags")))
                change_ten()
                results["ten"].append(measure(lambda: syncer.sync(s3, "many", "dags")))
            return {
                k: tuple(statistics.median(r[i] for r in v) for i in range(3))
                for k, v in results.items()
            }
        finally:
            aws.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()
    synced, direct = latency(args.rounds)
    p = benchlib.percentile
    base = statistics.median(direct)
    benchlib.print_table(
        f"PutObject -> file in dags/, {args.rounds} rounds ({benchlib.machine_line()})",
        ["path", "median s", "p95 s", "max s", "vs baseline"],
        [
            [
                "baseline: PutObject + GetObject",
                f"{base:.3f}",
                f"{p(direct, 0.95):.3f}",
                f"{max(direct):.3f}",
                "1.00",
            ],
            [
                "airdock sync (S3 event)",
                f"{statistics.median(synced):.3f}",
                f"{p(synced, 0.95):.3f}",
                f"{max(synced):.3f}",
                f"{statistics.median(synced) / base:.2f}",
            ],
        ],
    )
    figures = cost(args.objects)
    base_cpu = figures["list"][0]
    benchlib.print_table(
        f"One sync pass over {args.objects} objects, median of 3",
        ["pass", "CPU s", "wall s", "peak MiB", "CPU vs baseline"],
        [
            [label, f"{c:.3f}", f"{w:.3f}", f"{m:.1f}", f"{c / base_cpu:.2f}"]
            for label, (c, w, m) in (
                ("baseline: bare listing", figures["list"]),
                ("sync, all unchanged", figures["unchanged"]),
                ("sync, 10 changed", figures["ten"]),
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
