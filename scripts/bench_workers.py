#!/usr/bin/env python3
"""The worker fleet: what autoscaling between MinWorkers and MaxWorkers buys, and what it costs.

One mw1.small environment (5 tasks per worker, the smallest class MWAA lets scale: mw1.micro is
fixed at one worker) with MinWorkers 1, on Airflow 3.0.6 and the embedded AWS. It measures:

- the makespan (first task start -> last task end) of 60 tasks of 10 s with MaxWorkers 1 (the
  baseline) and then MaxWorkers 4, and their ratio (target >= 2.5x);
- scale-out: from the backlog (the run's first task start) to the first task started by a new
  worker (target < 20 s), and how much of it was the decision;
- scale-in: from the last task's end to the fleet back at MinWorkers, its extra workers gone
  through Celery's warm shutdown (the policy waits 20 s of spare capacity first);
- a worker SIGKILLed with tasks running (tasks with retries=1, the scheduler's heartbeat
  timeout lowered to 30 s): every task must still finish, none lost.

Each task marks its start and end in S3 with its process chain, so the worker that ran it is
known (tests/e2e/fleet_support.py, shared with tests/e2e/test_fleet_scaling.py). One run per
figure: the MaxWorkers 1 run alone takes over two minutes.

    .venv/bin/python scripts/bench_workers.py [--tasks 60] [--seconds 10] [--max-workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchlib
from bench_lifecycle import status, wait_until
from bench_runtime import runtime_clients

from tests.e2e.fleet_support import finished, marks, put_nap_dag, worker_of

BUCKET = "bench-dags"
NAME = "bench-fleet"


class FleetWatch:
    """Polls the runtime's report: which pid was which worker, and the worker names now."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "environments" / NAME / "state" / "runtime.json"
        self.pids: dict[int, str] = {}
        self.state: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with contextlib.suppress(OSError, ValueError):
                self.state = json.loads(self.path.read_text())
            for name, component in self.workers().items():
                if component.get("pid"):
                    self.pids[component["pid"]] = name

    def workers(self) -> dict[str, dict]:
        components = self.state.get("components", {})
        return {n: c for n, c in components.items() if c["kind"] == "worker"}

    def report(self) -> dict:
        return {
            "reason": self.state.get("reason"),
            "workers": {n: c["state"] for n, c in self.workers().items()},
            "autoscaling": self.state.get("autoscaling"),
        }

    def worker_of(self, record: dict) -> str | None:
        return worker_of(record, {n: {"kind": "worker", "pid": p} for p, n in self.pids.items()})

    def stop(self) -> None:
        self._stop.set()


def run_load(s3, dag_id: str, tasks: int, seconds: float, retries: int = 0) -> dict:
    put_nap_dag(s3, BUCKET, dag_id, count=tasks, seconds=seconds, retries=retries)
    wait_until(lambda: finished(marks(s3, BUCKET, dag_id)) == set(range(tasks)),
               timeout=60 * 30, interval=1.0)  # fmt: skip
    return marks(s3, BUCKET, dag_id)


def makespan(found: dict) -> float:
    starts = [r["t"] for (_, _, kind), r in found.items() if kind == "start"]
    ends = [r["t"] for (_, _, kind), r in found.items() if kind == "end"]
    return max(ends) - min(starts)


def set_max_workers(mwaa, value: int) -> None:
    mwaa.update_environment(Name=NAME, MaxWorkers=value)
    wait_until(lambda: status(mwaa, NAME) == "AVAILABLE", timeout=300, interval=0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-workers", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault(
        "AIRDOCK_UV_CACHE_DIR", str(Path.home() / ".cache" / "airdock-tests" / "uv")
    )
    rows: list[list[object]] = []
    # The embedded PostgreSQL's first start and the server take minutes on a loaded machine.
    with benchlib.live_server("--poll-interval", "0.1", start_timeout=300) as (
        _,
        endpoints,
        data_dir,
    ):
        mwaa, aws, params = runtime_clients(endpoints, data_dir)
        params.pop("LoggingConfiguration")  # MWAA's default: task logs only
        params["AirflowConfigurationOptions"] = {
            "core.dags_are_paused_at_creation": "False",
            "scheduler.task_instance_heartbeat_timeout": "30",
        }
        began = time.perf_counter()
        mwaa.create_environment(
            Name=NAME, EnvironmentClass="mw1.small", Schedulers=2, MinWorkers=1, MaxWorkers=1,
            **params,
        )  # fmt: skip
        wait_until(lambda: status(mwaa, NAME) in ("AVAILABLE", "CREATE_FAILED"), timeout=900)
        if status(mwaa, NAME) != "AVAILABLE":
            raise SystemExit(f"{NAME} failed: {mwaa.get_environment(Name=NAME)['Environment']}")
        print(f"environment AVAILABLE after {time.perf_counter() - began:.0f} s", flush=True)
        watch = FleetWatch(data_dir)
        s3 = aws("s3")

        one = makespan(run_load(s3, "bench_max1", args.tasks, args.seconds))
        print(f"MaxWorkers 1: {one:.1f} s", flush=True)
        set_max_workers(mwaa, args.max_workers)
        found = run_load(s3, f"bench_max{args.max_workers}", args.tasks, args.seconds)
        last_end = max(r["t"] for (_, _, kind), r in found.items() if kind == "end")
        many = makespan(found)
        starts = sorted(
            (r["t"], watch.worker_of(r)) for (_, _, kind), r in found.items() if kind == "start"
        )
        backlog = starts[0][0]
        first_new = min((t for t, worker in starts if worker != "worker-1"), default=None)
        change = (watch.state.get("autoscaling") or {}).get("last_change") or {}
        try:
            wait_until(lambda: len(watch.workers()) == 1, timeout=300, interval=0.25)
            scale_in: float | None = time.time() - last_end
        except TimeoutError:
            scale_in = None
            print("not back at MinWorkers after 300 s:", json.dumps(watch.report()), flush=True)
        ran_on = {worker for _, worker in starts}
        print(f"MaxWorkers {args.max_workers}: {many:.1f} s on {sorted(map(str, ran_on))}")

        # A worker dies with tasks running; every task must still end (retried).
        killed = kill_check(s3, watch)
        watch.stop()

        rows.append([f"makespan, {args.tasks} x {args.seconds:.0f} s, MaxWorkers 1 (baseline)",
                     f"{one:.1f} s", ""])  # fmt: skip
        rows.append([f"makespan, MaxWorkers {args.max_workers}", f"{many:.1f} s",
                     f"ratio {one / many:.2f}x (target >= 2.5x)"])  # fmt: skip
        rows.append(
            ["backlog -> a new worker runs a task",
             f"{first_new - backlog:.1f} s" if first_new else "never", "target < 20 s"]
        )  # fmt: skip
        if change.get("at") and change.get("workers_to", 0) > change.get("workers_from", 0):
            rows.append(["  of which: backlog -> scale-out decided",
                         f"{change['at'] - backlog:.1f} s", change.get("reason", "")])  # fmt: skip
        rows.append(["last task end -> back at MinWorkers",
                     f"{scale_in:.1f} s" if scale_in is not None else "> 300 s",
                     "20 s spare spell + warm shutdown"])  # fmt: skip
        rows.append(["SIGKILLed worker: tasks finished / started", killed["finished"],
                     f"{killed['retried']} retried; lost: {killed['lost']}"])  # fmt: skip
        rows.append(["SIGKILL -> last of its tasks finished", f"{killed['recovery']:.1f} s",
                     "heartbeat timeout 30 s + retry"])  # fmt: skip
    benchlib.print_table(
        f"Worker fleet, mw1.small (5 slots per worker), MinWorkers 1 ({benchlib.machine_line()})",
        ["measure", "value", "note"],
        rows,
    )
    return 0


def kill_check(s3, watch: FleetWatch, tasks: int = 6, seconds: float = 20.0) -> dict:
    dag_id = "bench_kill"
    put_nap_dag(s3, BUCKET, dag_id, count=tasks, seconds=seconds, retries=1)

    victim = sorted(watch.workers())[0]

    def running_on_victim() -> list[dict]:
        found = marks(s3, BUCKET, dag_id)
        return [r for (i, a, kind), r in found.items()
                if kind == "start" and (i, a, "end") not in found
                and watch.worker_of(r) == victim]  # fmt: skip

    wait_until(lambda: len(running_on_victim()) >= 2, timeout=300, interval=0.5)
    victims = running_on_victim()
    chain = victims[0]["pids"]
    worker_pid = next(p for p, n in watch.pids.items() if n == victim and p in chain)
    killed_at = time.time()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker_pid, signal.SIGKILL)
    for record in victims:  # the task processes too, wherever their group is
        for pid in record["pids"][: record["pids"].index(worker_pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_until(lambda: finished(marks(s3, BUCKET, dag_id)) == set(range(tasks)),
               timeout=600, interval=1.0)  # fmt: skip
    found = marks(s3, BUCKET, dag_id)
    ends = [r["t"] for (_, _, kind), r in found.items() if kind == "end"]
    return {
        "finished": f"{len(finished(found))} / {tasks}",
        "retried": len({i for i, a, kind in found if kind == "end" and a > 1}),
        "lost": tasks - len(finished(found)),
        "recovery": max(ends) - killed_at,
    }


if __name__ == "__main__":
    sys.exit(main())
