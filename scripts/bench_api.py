#!/usr/bin/env python3
"""API throughput and latency: get_environment and list_environments with 100 environments.

Each operation runs with 1 boto3 client and with 8 client processes, several rounds, and the
median is reported. The baseline, measured in the same run with the same clients, is a bare
HTTP GET of the health route: the floor set by the HTTP stack, not by Airdock's own work.

A second table prices authentication and authorization: the same calls against a second
server started with `--auth off` (no SigV4 check, no policy evaluation), measured in the same
run with rounds interleaved (on, off, on, off...) so drift in the machine hits both alike. The
auth-on server also answers a team user whose policy reads aws:ResourceTag (one more store read
per call), to show what attribute-based policies cost on top.

A third table puts a peer beside Airdock: MiniStack's MWAA emulator, installed from PyPI into a
throwaway virtualenv (scripts/bench_peer.py), holding the same environments, measured with the
same clients in rounds interleaved with Airdock's (auth on, background work at its defaults). It
prints the ratio Airdock/MiniStack and both p99s. MiniStack checks no signatures or policies.
If it cannot be installed or does not speak MWAA, the table says why and is left out.

    .venv/bin/python scripts/bench_api.py [--seconds 3] [--rounds 3] [--environments 100]
                                          [--no-peer]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peer
import benchlib

from controlplane.clientconfig import Endpoints
from controlplane.credentials import read_admin

# A user of team "2" with the ready-made team policy; environment i is tagged team=i%4.
TEAM_KEY = ("AKIABENCHTEAMUSER001", "bench-team-user-secret-xxxxxxxxxxxxxxxx")
TEAM_CONFIG = f"""
policies:
  TeamFullAccess: file://policies/team-full-access.json
users:
  bench:
    tags: {{team: "2"}}
    policies: [TeamFullAccess]
    access_keys: [{{access_key_id: {TEAM_KEY[0]}, secret_access_key: {TEAM_KEY[1]}}}]
"""


def _mwaa_factory(endpoints: Endpoints, key: tuple[str, str]):
    def make():
        import boto3
        from botocore.config import Config

        return boto3.client(
            "mwaa",
            endpoint_url=endpoints.mwaa_endpoint,
            region_name=endpoints.region,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )

    return make


def make_get(endpoints, key, name):
    factory = _mwaa_factory(endpoints, key)
    return lambda: (lambda c: lambda: c.get_environment(Name=name))(factory())


def make_list(endpoints, key):
    factory = _mwaa_factory(endpoints, key)
    return lambda: (lambda c: lambda: c.list_environments(MaxResults=25))(factory())


def make_health(endpoints):
    def make():
        import urllib3

        pool = urllib3.PoolManager(maxsize=1)
        url = endpoints.mwaa_endpoint + "/_airdock/health"
        return lambda: pool.request("GET", url)

    return make


def admin_key(data: Path) -> tuple[str, str]:
    admin = read_admin(data)
    return admin.access_key_id, admin.secret_access_key


def populate(endpoints: Endpoints, key: tuple[str, str], count: int) -> None:
    create_all(_mwaa_factory(endpoints, key)(), count)


def create_all(setup, count: int) -> None:
    params = benchlib.PHANTOM_PARAMS
    for i in range(count):
        setup.create_environment(Name=f"bench-{i:03d}", **params, Tags={"team": str(i % 4)})


def measure(factory, clients: int, args) -> dict:
    return benchlib.run_clients(factory, clients, args.seconds)


def row(label: str, clients: int, result: dict, *extra: str) -> list[object]:
    return [
        label,
        clients,
        f"{result['rate']:.0f}",
        f"{result['p50_ms']:.2f}",
        f"{result['p99_ms']:.2f}",
        *extra,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--environments", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve-arg", action="append", default=[], help="extra serve flag")
    parser.add_argument(
        "--no-peer", dest="peer", action="store_false", help="leave the MiniStack table out"
    )
    args = parser.parse_args()
    if args.environments < 3:
        parser.error("--environments must be at least 3")
    # The environment read: the one of team "2" nearest the middle (bench-050 of 100).
    index = min(range(2, args.environments, 4), key=lambda i: abs(i - args.environments // 2))
    probe = f"bench-{index:03d}"

    with contextlib.ExitStack() as stack:
        config_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="airdock-iam-")))
        shutil.copytree(benchlib.ROOT / "infra" / "policies", config_dir / "policies")
        (config_dir / "iam.yaml").write_text(TEAM_CONFIG)
        on_process, on_endpoints, on_data = stack.enter_context(
            benchlib.live_server("--iam-config", str(config_dir / "iam.yaml"), *args.serve_arg)
        )
        _, off_endpoints, off_data = stack.enter_context(
            benchlib.live_server("--auth", "off", *args.serve_arg)
        )
        on_key, off_key = admin_key(on_data), admin_key(off_data)
        populate(on_endpoints, on_key, args.environments)
        populate(off_endpoints, off_key, args.environments)
        time.sleep(2)
        idle_pss = benchlib.tree_pss_mb(on_process.pid)

        # Table 1, as before: the auth-on server (the default) against the health baseline.
        cases = [
            ("baseline: GET /_airdock/health", make_health(on_endpoints)),
            ("get_environment", make_get(on_endpoints, on_key, probe)),
            ("list_environments (25/page)", make_list(on_endpoints, on_key)),
        ]
        rows = []
        baseline: dict[int, float] = {}
        for label, factory in cases:
            for clients in (1, args.clients):
                result = benchlib.median_of(
                    [measure(factory, clients, args) for _ in range(args.rounds)]
                )
                if label.startswith("baseline"):
                    baseline[clients] = result["rate"]
                versus = f"{result['rate'] / baseline[clients]:.2f}"
                rows.append(row(label, clients, result, versus))
        busy_pss = benchlib.tree_pss_mb(on_process.pid)

        # Table 2: auth on vs off, interleaved rounds.
        pairs = [
            (
                "get_environment",
                make_get(on_endpoints, on_key, probe),
                make_get(off_endpoints, off_key, probe),
            ),
            (
                "list_environments (25/page)",
                make_list(on_endpoints, on_key),
                make_list(off_endpoints, off_key),
            ),
            (
                "get_environment, team user (ABAC)",
                make_get(on_endpoints, TEAM_KEY, probe),
                make_get(off_endpoints, off_key, probe),
            ),
        ]
        auth_rows = []
        for label, on_factory, off_factory in pairs:
            for clients in (1, args.clients):
                on_rounds, off_rounds = [], []
                for _ in range(args.rounds):
                    on_rounds.append(measure(on_factory, clients, args))
                    off_rounds.append(measure(off_factory, clients, args))
                on, off = benchlib.median_of(on_rounds), benchlib.median_of(off_rounds)
                ratios = [a["rate"] / b["rate"] for a, b in zip(on_rounds, off_rounds, strict=True)]
                auth_rows.append(
                    [
                        label,
                        clients,
                        f"{off['rate']:.0f}",
                        f"{on['rate']:.0f}",
                        f"{off['p50_ms']:.2f}",
                        f"{on['p50_ms']:.2f}",
                        f"{on['rate'] / off['rate']:.2f}",
                        f"{statistics.median(ratios):.2f}",
                    ]
                )

        # Table 3: Airdock (auth on) vs the peer, interleaved rounds.
        peer = stack.enter_context(bench_peer.ministack()) if args.peer else "left out (--no-peer)"
        peer_rows = (
            peer_table(peer, on_process.pid, on_endpoints, on_key, probe, args)
            if isinstance(peer, bench_peer.Peer)
            else []
        )

    benchlib.print_table(
        f"Airdock API, {args.environments} environments, "
        f"median of {args.rounds} x {args.seconds:.0f}s ({benchlib.machine_line()})",
        ["operation", "clients", "calls/s", "p50 ms", "p99 ms", "vs baseline"],
        rows,
    )
    print(
        f"\nserver memory (PSS of the whole process tree, embedded AWS included): "
        f"idle {idle_pss:.0f} MB, after load {busy_pss:.0f} MB (scripts/bench_memory.py details it)"
    )
    benchlib.print_table(
        "SigV4 + IAM authorization: auth on (default) vs `serve --auth off`, interleaved rounds "
        "(calls/s ratio on/off; 1.00 = free, 0.85 = 15% slower)",
        [
            "operation",
            "clients",
            "off calls/s",
            "on calls/s",
            "off p50 ms",
            "on p50 ms",
            "on/off",
            "on/off (paired)",
        ],
        auth_rows,
    )
    if peer_rows:
        benchlib.print_table(
            "Airdock (SigV4 + IAM on, background work at its defaults) vs MiniStack "
            f"(PyPI `{bench_peer.PACKAGE}`, no auth), interleaved rounds; "
            "ratio = Airdock/MiniStack",
            [
                "operation",
                "clients",
                "Airdock calls/s",
                "MiniStack calls/s",
                "ratio",
                "ratio (paired)",
                "Airdock p99 ms",
                "MiniStack p99 ms",
                "Airdock server CPU ms/call",
                "MiniStack server CPU ms/call",
                "client CPU ms/call (A / M)",
                "ratio ceiling",
            ],
            peer_rows,
        )
        print(
            "\nServer CPU per call is the whole process tree's (background work included) over "
            "a round, divided by its calls.\nThe ratio ceiling is what a server costing no "
            "CPU would reach with these clients: min(clients, cores) / (client CPU per call), "
            "against MiniStack's rate in the same rounds."
        )
    else:
        print(f"\nPeer comparison skipped: {peer}")
    return 0


def peer_table(
    peer, our_pid: int, endpoints: Endpoints, key: tuple[str, str], probe: str, args
) -> list:
    def peer_get():
        return (lambda c: lambda: c.get_environment(Name=probe))(
            bench_peer.mwaa_client(peer.endpoint)
        )

    def peer_list():
        return (lambda c: lambda: c.list_environments(MaxResults=25))(
            bench_peer.mwaa_client(peer.endpoint)
        )

    create_all(bench_peer.mwaa_client(peer.endpoint), args.environments)
    pairs = [
        ("get_environment", make_get(endpoints, key, probe), peer_get),
        ("list_environments (25/page)", make_list(endpoints, key), peer_list),
    ]
    rows = []
    for label, ours_factory, peer_factory in pairs:
        for clients in (1, args.clients):
            ours_rounds, peer_rounds = [], []
            for _ in range(args.rounds):
                ours_rounds.append(
                    benchlib.run_clients(ours_factory, clients, args.seconds, our_pid)
                )
                peer_rounds.append(
                    benchlib.run_clients(peer_factory, clients, args.seconds, peer.pid)
                )
            ours, theirs = benchlib.median_of(ours_rounds), benchlib.median_of(peer_rounds)
            paired = [a["rate"] / b["rate"] for a, b in zip(ours_rounds, peer_rounds, strict=True)]
            rows.append(
                [
                    label,
                    clients,
                    f"{ours['rate']:.0f}",
                    f"{theirs['rate']:.0f}",
                    f"{ours['rate'] / theirs['rate']:.2f}",
                    f"{statistics.median(paired):.2f}",
                    f"{ours['p99_ms']:.2f}",
                    f"{theirs['p99_ms']:.2f}",
                    f"{ours['server_cpu_ms']:.2f}",
                    f"{theirs['server_cpu_ms']:.2f}",
                    f"{ours['client_cpu_ms']:.2f} / {theirs['client_cpu_ms']:.2f}",
                    f"{ceiling(clients, ours, theirs):.2f}",
                ]
            )
    return rows


def ceiling(clients: int, ours: dict, theirs: dict) -> float:
    """The highest Airdock/MiniStack ratio these clients allow. Each client process spends
    `client_cpu_ms` of CPU on every call, and they run on at most `clients` of the cores, so
    even a server that cost no CPU at all would answer at most that many cores' worth of
    calls a second. Measured against MiniStack's rate in the same rounds."""
    busy_cores = min(clients, os.cpu_count() or 1)
    return busy_cores / (ours["client_cpu_ms"] / 1000) / theirs["rate"]


if __name__ == "__main__":
    sys.exit(main())
