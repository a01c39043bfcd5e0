"""Helpers shared by the benchmark scripts: a live server, timing, and the result table."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from controlplane.clientconfig import Endpoints, read_endpoints
from environments.plumbing import processes

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def live_server(*extra: str, data_dir: Path | None = None, start_timeout: float = 60.0):
    """Run `airdock serve` on a free loopback port; yield (process, endpoints, data_dir)."""
    with tempfile.TemporaryDirectory(prefix="airdock-bench-") as tmp:
        data = data_dir or Path(tmp) / "data"
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
        process = processes.spawn(
            [
                sys.executable,
                "-m",
                "controlplane.cli",
                "--log-level",
                "WARNING",
                "serve",
                "--port",
                "0",
                "--web-port",
                "0",
                "--data-dir",
                str(data),
                *extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            endpoints = _wait_healthy(process, data, start_timeout)
            yield process, endpoints, data
        finally:
            processes.kill_group(process, grace=20)
            log.close()


def _wait_healthy(process: subprocess.Popen[bytes], data_dir: Path, timeout: float) -> Endpoints:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("airdock serve exited during start-up")
        try:
            endpoints = read_endpoints(data_dir)
            with urllib.request.urlopen(endpoints.mwaa_endpoint + "/_airdock/health", timeout=1):
                return endpoints
        except (OSError, ValueError):
            pass  # not written yet, or not answering yet
        time.sleep(0.1)
    raise RuntimeError("airdock serve did not become healthy")


def memory_kb(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private pages) of one process, in kB, from /proc/<pid>/smaps_rollup."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    private = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {"rss": values["Rss"], "pss": values["Pss"], "uss": private}


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_pss_mb(root: int) -> float:
    """What a process tree really occupies: the sum of its processes' PSS (shared pages are
    divided among the processes sharing them, not counted once per process as RSS would)."""
    total = 0
    for pid in descendants(root):
        try:
            total += memory_kb(pid)["pss"]
        except OSError:
            continue  # ended while we looked
    return total / 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by `root` and every live process below it."""
    ticks = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def _client_worker(make_call: Callable[[], Callable[[], None]], seconds: float, queue) -> None:
    call = make_call()
    call()  # warm the connection
    latencies: list[float] = []
    cpu_before = time.process_time()
    end = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        if start >= end:
            break
        call()
        latencies.append(time.perf_counter() - start)
    queue.put((latencies, time.process_time() - cpu_before))


def run_clients(
    make_call: Callable[[], Callable[[], None]],
    clients: int,
    seconds: float,
    server_pid: int | None = None,
) -> dict:
    """`clients` processes call as fast as they can for `seconds`; returns rate and latency,
    and the CPU the clients spent per call. Given the server's pid, also the CPU its whole
    process tree spent per call over the same window (background work included)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [
        ctx.Process(target=_client_worker, args=(make_call, seconds, queue)) for _ in range(clients)
    ]
    server_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    client_cpu = 0.0
    for _ in workers:
        theirs, cpu = queue.get()
        latencies.extend(theirs)
        client_cpu += cpu
    for worker in workers:
        worker.join()
    calls = max(len(latencies), 1)
    result = {
        "rate": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "client_cpu_ms": client_cpu / calls * 1000,
    }
    if server_pid:
        # The window includes the clients' start-up and their warming call: a little high.
        result["server_cpu_ms"] = (tree_cpu_seconds(server_pid) - server_before) / calls * 1000
    return result


def median_of(rounds: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)))


def machine_line() -> str:
    return f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


# CreateEnvironment arguments naming prerequisites that do not exist: each create runs the
# reconciler's checks against the embedded AWS and ends CREATE_FAILED, cheaply.
PHANTOM_PARAMS = {
    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/bench",
    "SourceBucketArn": "arn:aws:s3:::bench",
    "DagS3Path": "dags",
    "NetworkConfiguration": {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]},
}
