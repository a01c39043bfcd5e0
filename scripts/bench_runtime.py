#!/usr/bin/env python3
"""The Airflow runtime: create -> AVAILABLE with a real Airflow, new DAG -> first task success,
and the memory an idle environment takes.

Runs `airdock serve` with Airflow on (PostgreSQL on 127.0.0.1:5432 for the metadata) and the
shared uv cache, so virtualenvs are warm after the first environment. It measures:

- create -> AVAILABLE: the first environment (virtualenv hardlinked from the cache, database
  migrated), then `--rounds` pairs one at a time, each pair a create as usual and one with the
  bytecode seeds withheld (the baseline), then `--fleet` created at once;
- S3 PutObject of a new DAG -> its first task has written its result to S3 (p50/p95), on one
  mw1.small environment with one worker and DAGs unpaused at creation;
- idle PSS of that environment's processes (all of its process groups, the zygote's
  included), after `--idle` seconds, and the CPU they burn while idle (share of one core, over
  the same seconds);
- the control plane's peak RSS (supervisor, background and API workers, summed);
- the baseline (`--baseline`, on by default): the same idle environment, after a few DAGs, on a
  second server that starts each Airflow process by itself (`--no-airflow-zygote`).

The reference column gives MWAA's figures and the targets of this machine.

    .venv/bin/python scripts/bench_runtime.py [--rounds 3] [--dags 5] [--fleet 5] [--idle 20]
                                              [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
from bench_lifecycle import clients, prerequisites, status, wait_until

from controlplane.credentials import read_admin
from environments.airflow.runtime import pidfiles

DAG = """
from datetime import datetime

import boto3
from airflow.decorators import dag, task


@dag(dag_id="{dag_id}", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False)
def probe():
    @task
    def write():
        boto3.client("s3").put_object(Bucket="bench-dags", Key="results/{dag_id}", Body=b"ok")

    write()


probe()
"""


RUNTIME_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:*:*:airflow-celery-*"},
            {"Effect": "Allow", "Action": "logs:*",
             "Resource": "arn:aws:logs:*:*:log-group:airflow-*"},
            {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::bench-dags", "arn:aws:s3:::bench-dags/*"]},
        ],
    }
)  # fmt: skip


def group_members(pgids: set[int]) -> Iterator[tuple[Path, list[str]]]:
    """(/proc/<pid>, the fields of its stat after the command) of every process in the given
    process groups; a process that ends while we look is left out."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) in pgids:
                yield entry, fields
        except (OSError, IndexError, ValueError):
            continue


def pss_mb(pgids: set[int]) -> float:
    """Proportional set size of every process in the given process groups."""
    total = 0
    for entry, _ in group_members(pgids):
        with contextlib.suppress(OSError, IndexError, ValueError):
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


def memory_by_component(groups: dict[str, int]) -> list[list[object]]:
    """For each component (and the zygote they are forked from): its processes, and their
    PSS and USS (private pages) in MB."""
    rows: list[list[object]] = []
    for name, pgid in sorted(groups.items()):
        pss = uss = count = 0
        for entry, _ in group_members({pgid}):
            with contextlib.suppress(OSError, IndexError, ValueError):
                for line in (entry / "smaps_rollup").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key == "Pss":
                        pss += int(value.split()[0])
                    elif key in ("Private_Clean", "Private_Dirty"):
                        uss += int(value.split()[0])
                count += 1
        rows.append([name, count, f"{pss / 1024:.0f}", f"{uss / 1024:.0f}"])
    return rows


def cpu_seconds(pgids: set[int]) -> float:
    """User and system CPU time so far of every process in the given process groups."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in group_members(pgids))
    return ticks / os.sysconf("SC_CLK_TCK")


def control_plane_peak_mb(root: int) -> float:
    """Sum of the peak RSS (VmHWM) of `airdock serve`'s own processes: its supervisor, the
    background and API workers (not the embedded AWS, not Airflow)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        ancestors = _ancestors(int(entry.name))
        if b"controlplane" not in command or root not in ancestors:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def _ancestors(pid: int) -> set[int]:
    seen = {pid}
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        seen.add(pid)
    return seen


@contextlib.contextmanager
def seeds_withheld(seeds: Path, withheld: bool) -> Iterator[None]:
    """With `withheld`, each seed's archives are renamed away for the duration (and put back):
    nothing is planted, and since each seed is still there, no build makes a new one."""
    moved = []
    if withheld:
        for archive in seeds.glob("*/*.tar"):
            archive.rename(archive.with_suffix(".withheld"))
            moved.append(archive)
    try:
        yield
    finally:
        for archive in moved:
            archive.with_suffix(".withheld").rename(archive)


def create_available(mwaa, params: dict, name: str) -> float:
    start = time.perf_counter()
    mwaa.create_environment(Name=name, **params)
    wait_until(lambda: status(mwaa, name) in ("AVAILABLE", "CREATE_FAILED"), timeout=600)
    if status(mwaa, name) != "AVAILABLE":
        raise SystemExit(f"{name} failed: {mwaa.get_environment(Name=name)['Environment']}")
    return time.perf_counter() - start


def runtime_clients(endpoints, data_dir: Path) -> tuple:
    """(mwaa, aws, CreateEnvironment parameters) for a server; the execution role may do what
    MWAA's documented policy allows: the Celery queue, the environment's logs, and (for the
    probe task) the DAG bucket."""
    mwaa, aws = clients(endpoints, read_admin(data_dir))
    params = prerequisites(aws)
    aws("iam").put_role_policy(
        RoleName="bench-exec", PolicyName="airflow-runtime", PolicyDocument=RUNTIME_POLICY
    )
    return mwaa, aws, params


def new_dags(s3, count: int) -> list[float]:
    """Put `count` new DAGs in the bucket one at a time; seconds from each PutObject until
    its task has written its result."""
    latencies = []
    for _ in range(count):
        dag_id = f"bench_{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        s3.put_object(
            Bucket="bench-dags", Key=f"dags/{dag_id}.py", Body=DAG.format(dag_id=dag_id).encode()
        )

        def done(dag_id: str = dag_id) -> bool:
            found = s3.list_objects_v2(Bucket="bench-dags", Prefix=f"results/{dag_id}")
            return found.get("KeyCount", 0) > 0

        wait_until(done, timeout=300, interval=0.2)
        latencies.append(time.perf_counter() - start)
    return latencies


def idle_memory(data_dir: Path, name: str, seconds: float) -> tuple[float, float, list]:
    """After `seconds` idle: the environment's PSS in MB, the share of a core it burnt
    meanwhile, and its memory by component."""
    # Every component's process group, and the zygote's, from their pid files.
    groups = pidfiles.live_groups(data_dir / "environments" / name / "state" / "run")
    pgids = set(groups.values())
    burnt, began = cpu_seconds(pgids), time.perf_counter()
    time.sleep(seconds)
    share = (cpu_seconds(pgids) - burnt) / (time.perf_counter() - began)
    return pss_mb(pgids), share, memory_by_component(groups)


def delete(mwaa, names: list[str]) -> None:
    for name in names:
        mwaa.delete_environment(Name=name)
    wait_until(lambda: all(status(mwaa, n) == "GONE" for n in names), timeout=600, interval=0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of warm creates")
    parser.add_argument("--dags", type=int, default=5, help="new DAGs to time")
    parser.add_argument("--fleet", type=int, default=5, help="environments created at once")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds idle before PSS")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the idle environment on a server with --no-airflow-zygote",
    )
    args = parser.parse_args()
    os.environ.setdefault(
        "AIRDOCK_UV_CACHE_DIR", str(Path.home() / ".cache" / "airdock-tests" / "uv")
    )
    rows: list[list[object]] = []
    with benchlib.live_server("--poll-interval", "0.1") as (process, endpoints, data_dir):
        mwaa, aws, params = runtime_clients(endpoints, data_dir)
        params["AirflowConfigurationOptions"] = {"core.dags_are_paused_at_creation": "False"}
        first = create_available(mwaa, params, "bench-first")
        rows.append(["create -> AVAILABLE, first environment", f"{first:.1f} s", "MWAA 20-30 min"])

        # Warm creates, in pairs: one as every create runs, one with the bytecode seeds moved
        # aside (environments.airflow.bytecode), so that each of its processes compiles what
        # it imports, as every create did before seeds. Order alternates within the pairs.
        seeds = Path(os.environ["AIRDOCK_UV_CACHE_DIR"]).absolute().parent / "bytecode"
        warm: dict[str, list[float]] = {"seeded": [], "unseeded": []}
        for i in range(args.rounds):
            for kind in ("seeded", "unseeded") if i % 2 == 0 else ("unseeded", "seeded"):
                name = f"bench-{kind}-{i}"
                with seeds_withheld(seeds, kind == "unseeded"):
                    warm[kind].append(create_available(mwaa, params, name))
                delete(mwaa, [name])
        if args.rounds:
            seeded, unseeded = (statistics.median(warm[k]) for k in ("seeded", "unseeded"))
            rows.append(
                [f"create -> AVAILABLE, warm (median of {args.rounds})",
                 f"{seeded:.1f} s", "target < 30 s"]
            )  # fmt: skip
            rows.append(
                [f"  same, bytecode seeds withheld (median of {args.rounds})",
                 f"{unseeded:.1f} s", f"seeded/withheld {seeded / unseeded:.2f}x"]
            )  # fmt: skip

        s3 = aws("s3")
        latencies = new_dags(s3, args.dags)
        if latencies:
            rows.append(
                ["new DAG -> first task success, p50",
                 f"{benchlib.percentile(latencies, 0.5):.1f} s", "target < 10 s"]
            )  # fmt: skip
            rows.append(
                ["new DAG -> first task success, p95",
                 f"{benchlib.percentile(latencies, 0.95):.1f} s", "MWAA >= 30 s sync + listing"]
            )  # fmt: skip

        idle, share, by_component = idle_memory(data_dir, "bench-first", args.idle)
        rows.append(
            ["idle PSS, mw1.small, 2 schedulers, 1 worker", f"{idle:.0f} MB", "target <= 1024 MB"]
        )
        rows.append(["environments per GB (idle PSS)", f"{1024 / idle:.2f}", ""])
        rows.append(
            [f"idle CPU of that environment ({args.idle:.0f} s)", f"{share:.0%} of a core", ""]
        )

        if args.fleet:
            names = [f"bench-fleet-{i}" for i in range(args.fleet)]
            start = time.perf_counter()
            with ThreadPoolExecutor(args.fleet) as pool:
                list(pool.map(lambda n: mwaa.create_environment(Name=n, **params), names))
            wait_until(
                lambda: all(status(mwaa, n) in ("AVAILABLE", "CREATE_FAILED") for n in names),
                timeout=900,
                interval=0.5,
            )
            took = time.perf_counter() - start
            failed = [n for n in names if status(mwaa, n) != "AVAILABLE"]
            rows.append(
                [f"create -> AVAILABLE, {args.fleet} at once (all)",
                 f"{took:.1f} s" + (f" ({len(failed)} failed)" if failed else ""), ""]
            )  # fmt: skip
            delete(mwaa, names)
        peak = control_plane_peak_mb(process.pid)
        rows.append(["control plane peak RSS (its processes, summed)", f"{peak:.0f} MB", ""])
        delete(mwaa, ["bench-first"])

    if args.baseline:
        # The same environment on a server that starts each Airflow process by itself.
        with benchlib.live_server("--poll-interval", "0.1", "--no-airflow-zygote") as (
            _,
            endpoints,
            data_dir,
        ):
            mwaa, aws, params = runtime_clients(endpoints, data_dir)
            params["AirflowConfigurationOptions"] = {"core.dags_are_paused_at_creation": "False"}
            create_available(mwaa, params, "bench-first")
            new_dags(aws("s3"), min(args.dags, 3))
            base, _, base_components = idle_memory(data_dir, "bench-first", args.idle)
            delete(mwaa, ["bench-first"])
        rows.append(
            ["  same, each process started by itself (--no-airflow-zygote)",
             f"{base:.0f} MB", f"zygote/by itself {idle / base:.2f}x"]
        )  # fmt: skip
    benchlib.print_table(
        f"Airflow runtime ({benchlib.machine_line()})", ["measure", "value", "reference"], rows
    )
    benchlib.print_table(
        "the idle mw1.small environment by component, MB",
        ["component", "processes", "PSS", "USS"],
        by_component,
    )
    if args.baseline:
        benchlib.print_table(
            "the same, each process started by itself (--no-airflow-zygote), MB",
            ["component", "processes", "PSS", "USS"],
            base_components,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
