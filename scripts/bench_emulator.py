#!/usr/bin/env python3
"""The embedded AWS's write path: the journal against the old snapshot-only mode.

PutObject (1 KiB body) and CreateLogGroup latency (p50/p95) and throughput, against four
embedded AWS servers run side by side:

- "snapshot": `--durability snapshot`, the old unsafe path (a snapshot of everything every
  0.5 s while anything changes; a crash loses the last interval's writes);
- "journal": the default, where every write is fsynced to the journal (group commit) before
  its 200;

each once on a small state (empty) and once on a large one (--objects S3 objects and
--log-groups log groups, restored from the same saved state), to show that the journal's cost
per write stays flat as the state grows. Each measurement runs with 1 client and with
--clients client processes; rounds go round-robin over the servers (interleaved), so drift in
the machine hits all alike, and the median over rounds is reported.

    .venv/bin/python scripts/bench_emulator.py [--seconds 2] [--rounds 3] [--objects 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from environments.emulator.supervisor import free_port
from environments.plumbing import processes

REGION = "us-east-1"
BUCKET = "bench-bucket"
MODES = ("snapshot", "journal")


@contextlib.contextmanager
def emulator(state_dir: Path, durability: str, *extra: str) -> Iterator[str]:
    port = free_port()
    log = open(state_dir.parent / f"{state_dir.name}.log", "wb")  # noqa: SIM115
    process = processes.spawn(
        [
            sys.executable,
            "-m",
            "environments.emulator.server",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--durability",
            durability,
            *extra,
        ],
        cwd=benchlib.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded AWS did not start; see {log.name}")
            try:
                with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield endpoint
    finally:
        processes.kill_group(process, grace=120)
        log.close()


def client(endpoint: str, service: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=16),
    )


def populate(endpoint: str, objects: int, log_groups: int) -> None:
    s3, logs = client(endpoint, "s3"), client(endpoint, "logs")
    s3.create_bucket(Bucket=BUCKET)
    body = os.urandom(512)
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(
                    Bucket=BUCKET, Key=f"existing/{i:07d}", Body=body + b"%d" % i
                ),
                range(objects),
            )
        )
        list(
            pool.map(
                lambda i: logs.create_log_group(logGroupName=f"existing-{i:06d}"), range(log_groups)
            )
        )


def make_put(endpoint: str) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        s3 = client(endpoint, "s3")
        body, names = os.urandom(1024), itertools.count()
        prefix = f"bench/{os.getpid()}-{time.monotonic_ns()}"
        return lambda: s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{next(names)}", Body=body)

    return make


def make_log_group(endpoint: str) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        logs, names = client(endpoint, "logs"), itertools.count()
        prefix = f"bench-{os.getpid()}-{time.monotonic_ns()}"
        return lambda: logs.create_log_group(logGroupName=f"{prefix}-{next(names)}")

    return make


def state_bytes(state_dir: Path) -> int:
    snapshots = sorted((state_dir / "snapshots").glob("gen-*.snap"))
    return snapshots[-1].stat().st_size if snapshots else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--log-groups", type=int, default=1000)
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="airdock-bench-")))
        # The large state is made once, saved by an orderly stop, and copied for each mode.
        started = time.monotonic()
        # Made fastest with no snapshot until the stop (and no journal).
        seed_flags = ("--snapshot-interval", "3600")
        with emulator(tmp / "large-seed", "snapshot", *seed_flags) as endpoint:
            populate(endpoint, args.objects, args.log_groups)
        print(
            f"large state: {args.objects} objects, {args.log_groups} log groups, "
            f"{state_bytes(tmp / 'large-seed') / 1e6:.1f} MB snapshot "
            f"(made in {time.monotonic() - started:.0f} s)"
        )
        servers: dict[tuple[str, str], str] = {}
        for size, mode in itertools.product(("small", "large"), MODES):
            state = tmp / f"{size}-{mode}"
            if size == "large":
                shutil.copytree(tmp / "large-seed", state)
            servers[(size, mode)] = stack.enter_context(emulator(state, mode))
            if size == "small":
                client(servers[(size, mode)], "s3").create_bucket(Bucket=BUCKET)

        operations = {"PutObject": make_put, "CreateLogGroup": make_log_group}
        results: dict[tuple[str, str, str, int], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for operation, factory in operations.items():
                for clients in (1, args.clients):
                    for (size, mode), endpoint in servers.items():
                        result = benchlib.run_clients(factory(endpoint), clients, args.seconds)
                        results.setdefault((operation, size, mode, clients), []).append(result)

        rows = []
        for (operation, size, mode, clients), rounds in results.items():
            median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            old = {
                key: statistics.median(
                    r[key] for r in results[(operation, size, "snapshot", clients)]
                )
                for key in rounds[0]
            }
            rows.append(
                [
                    operation,
                    size,
                    mode,
                    clients,
                    f"{median['rate']:.0f}",
                    f"{median['p50_ms']:.2f}",
                    f"{median['p95_ms']:.2f}",
                    f"{median['p50_ms'] / old['p50_ms']:.2f}x",
                    f"{median['p95_ms'] / old['p95_ms']:.2f}x",
                ]
            )
        rows.sort(key=lambda row: (row[0], row[3], row[1], row[2] != "snapshot"))
        benchlib.print_table(
            f"Embedded AWS writes, median of {args.rounds} interleaved rounds of "
            f"{args.seconds:g} s ({benchlib.machine_line()})",
            [
                "operation",
                "state",
                "durability",
                "clients",
                "calls/s",
                "p50 ms",
                "p95 ms",
                "p50 vs snapshot",
                "p95 vs snapshot",
            ],
            rows,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
