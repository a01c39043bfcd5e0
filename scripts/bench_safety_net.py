#!/usr/bin/env python3
"""What the DAG-sync safety net costs the API: get_environment with 100 AVAILABLE environments.

S3 events bring DAG changes to the environments at once; the full DAG-sync pass (every
`--dag-sync-interval` seconds, 30 by default) is the safety net behind them: it lists every
environment's DAG prefix and settles what an event missed. It runs in the background worker and
asks the embedded AWS, both beside the API workers on the same cores.

Two `--no-airflow` servers hold the same 100 AVAILABLE environments (real buckets, roles and
subnets, a few DAG files each): one with the pass at its default interval, one with it once an
hour, the baseline. get_environment is measured with 1 and 8 client processes, in rounds
interleaved between the two. The table gives the ratio default/hourly of the calls/s (paired
round by round), and the CPU the background worker and the embedded AWS spent meanwhile.

    .venv/bin/python scripts/bench_safety_net.py [--environments 100] [--rounds 4] [--seconds 8]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_api
import benchlib
from bench_lifecycle import clients, prerequisites, status, wait_until

from controlplane.credentials import read_admin
from controlplane.server.status import read_status

DAG_FILES = 3
HOURLY = "3600"


def populate(endpoints, data: Path, count: int) -> None:
    """`count` AVAILABLE environments on the bench bucket, each with DAG_FILES DAGs."""
    mwaa, aws = clients(endpoints, read_admin(data))
    params = prerequisites(aws)
    s3 = aws("s3")
    for i in range(DAG_FILES):
        s3.put_object(Bucket="bench-dags", Key=f"dags/dag_{i}.py", Body=b"# a DAG file\n")
    names = [f"net-{i:03d}" for i in range(count)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: mwaa.create_environment(Name=n, **params), names))
    wait_until(lambda: all(status(mwaa, n) == "AVAILABLE" for n in names), 600, interval=0.5)


def background_pids(data: Path) -> list[int]:
    """The server's parts that are not API workers (whose CPU is the calls themselves), as its
    supervisor records them: the background worker, the embedded AWS, the web doors."""
    parts = (read_status(data) or {}).get("parts", {})
    return [
        part["pid"]
        for name, part in parts.items()
        if part.get("pid") and not name.startswith("api-")
    ]


def cpu_of(pids: list[int]) -> float:
    return sum(benchlib.tree_cpu_seconds(pid) for pid in pids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--environments", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        servers = {
            "default": stack.enter_context(benchlib.live_server("--no-airflow")),
            "hourly": stack.enter_context(
                benchlib.live_server("--no-airflow", "--dag-sync-interval", HOURLY)
            ),
        }
        for _, endpoints, data in servers.values():
            populate(endpoints, data, args.environments)
        probe = f"net-{args.environments // 2:03d}"
        rows = []
        for clients_count in (1, args.clients):
            rounds: dict[str, list[dict]] = {label: [] for label in servers}
            busy: dict[str, float] = dict.fromkeys(servers, 0.0)
            for _ in range(args.rounds):
                for label, (_, endpoints, data) in servers.items():
                    factory = bench_api.make_get(endpoints, bench_api.admin_key(data), probe)
                    others = background_pids(data)
                    before = cpu_of(others)
                    rounds[label].append(benchlib.run_clients(factory, clients_count, args.seconds))
                    busy[label] += cpu_of(others) - before
            default, hourly = (benchlib.median_of(rounds[k]) for k in ("default", "hourly"))
            paired = [
                a["rate"] / b["rate"]
                for a, b in zip(rounds["default"], rounds["hourly"], strict=True)
            ]
            measured = args.rounds * args.seconds
            rows.append(
                [
                    clients_count,
                    f"{default['rate']:.0f}",
                    f"{hourly['rate']:.0f}",
                    f"{default['rate'] / hourly['rate']:.2f}",
                    f"{statistics.median(paired):.2f}",
                    f"{busy['default'] / measured * 100:.1f}",
                    f"{busy['hourly'] / measured * 100:.1f}",
                ]
            )
    benchlib.print_table(
        f"get_environment with {args.environments} AVAILABLE environments (--no-airflow), DAG-sync "
        f"pass at its default interval vs once an hour; median of {args.rounds} x "
        f"{args.seconds:g}s, rounds interleaved ({benchlib.machine_line()})",
        [
            "clients",
            "default calls/s",
            "hourly calls/s",
            "default/hourly",
            "default/hourly (paired)",
            "background CPU % default",
            "background CPU % hourly",
        ],
        rows,
    )
    print(
        "\nBackground CPU: the background worker, the embedded AWS and the web doors (every "
        "part but the API workers), in % of one core over the measured rounds."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
