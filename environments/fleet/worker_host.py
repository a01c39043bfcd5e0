"""Celery workers for an environment on a host of their own (`airdock worker NAME`).

They consume the environment's SQS queue, run its DAGs from a virtualenv of this host, as
the execution role (refreshed keys, as on the control plane's host), and write their results
to the environment's metadata database. The DAGs are mirrored from the same S3 prefix every
`sync_seconds`, and at once when a task's DAG file is not here yet
(environments.airflow.runtime.dag_wait_child). A heartbeat row in that database
(environments.airflow.runtime.remote_registry) makes them count in `airdock env status` on
the control plane's host.

A worker that exits is started again after a short backoff. SIGTERM or SIGINT stop them
with Celery's warm shutdown: running tasks get `stop_grace` seconds to finish. An update of
the environment is followed (environments.fleet.updates): the workers are rebuilt and
replaced, warmly too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from environments.airflow.runtime import configuration, remote_registry
from environments.airflow.runtime import dag_wait_child as dag_wait
from environments.airflow.runtime.join import CA_FIELD
from environments.fleet.setup import Joined, WorkerOptions, WorkerSetup, WorkerSetupError
from environments.fleet.updates import (
    FOLLOW_SECONDS,
    AirflowVersionChanged,
    UpdateWatch,
    built_from,
)
from environments.plumbing import processes as procs
from environments.plumbing.files import atomic_write

log = logging.getLogger(__name__)

RESTART_AFTER_SECONDS = 5.0
STOP_GRACE = 60.0
TICK_SECONDS = 0.25  # how soon a waiting task's sync request is seen
SYNC_RETRY_SECONDS = 2.0  # after a failed pass, whatever --sync-seconds says: a task may wait


@dataclass
class PassSchedule:
    """When the host mirrors the DAGs: every `every` seconds, at once when a waiting task asks
    (dag_wait_child), and within `retry` seconds after a failed pass, however long `every` is,
    so that a task waiting for its file is not left to its timeout by one failure."""

    every: float
    retry: float = SYNC_RETRY_SECONDS
    next_at: float = 0.0  # the pass in join() was not recorded for waiting tasks: due at once

    def due(self, now: float, requested: bool) -> bool:
        return requested or now >= self.next_at

    def passed(self, ok: bool, now: float) -> None:
        self.next_at = now + (self.every if ok else min(self.every, self.retry))


@dataclass
class _Worker:
    index: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    offset: int = 0
    ready: bool = False
    next_start: float = 0.0
    restarts: int = 0


class WorkerHost:
    def __init__(self, options: WorkerOptions, stop_grace: float = STOP_GRACE) -> None:
        self.options = options
        self.stop_grace = stop_grace
        self.setup = WorkerSetup(options)
        self.joined: Joined | None = None
        self._workers: list[_Worker] = []

    @property
    def host_id(self) -> str:
        return f"{self.options.host_id}:{self.setup.workspace.root}"

    def environment_variables(self, joined: Joined) -> dict[str, str]:
        plan = joined.plan
        folder = joined.credentials.folder
        env = configuration.component_environment(
            plan,
            "worker",
            startup_exports=joined.startup_exports,
            api_port=0,  # the execution API is the control plane host's, set below
            secrets=self.options.join,
            aws_config=folder / "config",
            aws_credentials=folder / "credentials",
        )
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = joined.execution_api_url
        authority = self.options.join.get(CA_FIELD)
        if authority:
            # Airflow 3's task client trusts certifi's CAs plus `[api] ssl_cert` (no API
            # server runs here, the only other reader of that option).
            path = joined.workspace.home / ".airdock" / "execution-api-ca.pem"
            atomic_write(path, authority, mode=0o644)
            env["AIRFLOW__API__SSL_CERT"] = str(path)
        env["AIRFLOW__CELERY__WORKER_AUTOSCALE"] = f"{joined.concurrency},{joined.concurrency}"
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(joined.concurrency)
        env[dag_wait.SYNC_DIR_VARIABLE] = str(self.sync_folder)
        return env

    @property
    def sync_folder(self) -> Path:
        """Where tasks ask for a sync and read when the last one began (dag_wait_child)."""
        return self.setup.workspace.home / ".airdock" / "dag-sync"

    def run(self, stop: threading.Event) -> int:
        self.joined = joined = self.setup.join()
        env = self.environment_variables(joined)
        logs = joined.workspace.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._workers = [
            _Worker(i, logs / f"remote-worker-{i}.log") for i in range(1, self.options.workers + 1)
        ]
        log.info(
            "%d worker(s) for %s on queue %s, concurrency %d",
            len(self._workers), joined.plan.name, joined.plan.queue_name, joined.concurrency,
        )  # fmt: skip
        passes = PassSchedule(self.options.sync_seconds)
        watch = UpdateWatch(joined.environment)
        next_beat, next_follow = 0.0, time.monotonic() + FOLLOW_SECONDS
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_follow:
                    next_follow = now + FOLLOW_SECONDS
                    try:
                        rebuilt = self._follow(watch)
                    except AirflowVersionChanged as err:
                        log.error("%s", err)
                        return 1
                    if rebuilt is not None:
                        joined, env = rebuilt, self.environment_variables(rebuilt)
                for worker in self._workers:
                    self._watch(worker, env, now)
                if joined.credentials.due():
                    joined.credentials.refresh(self.setup.operator_client("sts"))
                if passes.due(now, dag_wait.requested(self.sync_folder)):
                    passes.passed(self._sync_dags(joined), time.monotonic())
                if now >= next_beat:
                    next_beat = now + remote_registry.BEAT_SECONDS
                    self._beat()
                stop.wait(TICK_SECONDS)
        finally:
            self._stop_all()
            with contextlib.suppress(psycopg.Error):
                remote_registry.leave(joined.plan.database_url, self.host_id)
        return 0

    def _follow(self, watch: UpdateWatch) -> Joined | None:
        """After an update the workers are built from, build this host's anew (the venv, the
        plugins, the startup script) while the old workers still run, then replace them.
        A rebuild that fails leaves the old workers running."""
        try:
            current = self.setup.get_environment()
        except WorkerSetupError as err:
            log.warning("%s; asking again in %.0f s", err, FOLLOW_SECONDS)
            return None
        changed = watch.changes(current)
        if not changed:
            return None
        log.info("the environment was updated (%s): rebuilding this host's workers",
                 ", ".join(changed))  # fmt: skip
        try:
            fresh = self.setup.join()
        except WorkerSetupError as err:  # the update itself cannot be built here
            watch.refused = built_from(current)
            log.error("rebuilding for the update failed, the workers that run stay: %s", err)
            return None
        except Exception as err:  # S3, STS, the database: tried again at the next look
            log.warning("rebuilding for the update was interrupted (%s); trying again in %.0f s",
                        err, FOLLOW_SECONDS)  # fmt: skip
            return None
        self._stop_all()  # warm: running tasks get stop_grace to finish
        self.joined = fresh
        watch.applied, watch.refused = fresh.environment, None
        for worker in self._workers:
            worker.next_start, worker.ready = 0.0, False
        log.info("workers rebuilt for the update; starting them")
        return fresh

    def _sync_dags(self, joined: Joined) -> bool:
        asked = dag_wait.take_request(self.sync_folder)
        started = time.time()
        try:
            self.setup.sync_dags(joined.environment, joined.credentials)
        except Exception as err:  # retried soon; a waiting task waits for that pass
            log.warning("syncing the DAGs failed: %s", err)
            return False
        record_pass(self.sync_folder, started)
        if asked:
            log.info("DAGs synced for a task whose DAG file was not here yet")
        return True

    def _watch(self, worker: _Worker, env: dict[str, str], now: float) -> None:
        process = worker.process
        if process is not None and process.poll() is not None:
            log.warning("worker %d exited with code %s", worker.index, process.returncode)
            worker.process = None
            worker.ready = False
            worker.next_start = now + RESTART_AFTER_SECONDS
        if worker.process is None and now >= worker.next_start:
            self._spawn(worker, env)
        if worker.process is not None and not worker.ready:
            with open(worker.log_path, "rb") as handle:
                handle.seek(worker.offset)
                worker.ready = b" ready." in handle.read()

    def _spawn(self, worker: _Worker, env: dict[str, str]) -> None:
        assert self.joined is not None
        plan = self.joined.plan
        argv = [
            plan.venv / "bin" / "airflow", "celery", "worker", "--skip-serve-logs",
            "--celery-hostname", f"{self.options.host_id}-{worker.index}@{plan.name}",
            "--queues", plan.queue_name, "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        with open(worker.log_path, "ab") as out:
            worker.offset = out.tell()
            worker.process = procs.spawn(
                argv, env=env, cwd=plan.workspace / "home", stdout=out, stderr=subprocess.STDOUT
            )
        if worker.restarts or worker.next_start:
            worker.restarts += 1
        log.info("worker %d started (pid %d), log %s", worker.index, worker.process.pid,
                 worker.log_path)  # fmt: skip

    def _beat(self) -> None:
        assert self.joined is not None
        running = [w for w in self._workers if w.process is not None]
        try:
            remote_registry.beat(
                self.joined.plan.database_url,
                self.host_id,
                workers=len(running),
                ready=sum(1 for w in running if w.ready),
                concurrency=self.joined.concurrency,
                pids=[w.process.pid for w in running if w.process is not None],
            )
        except psycopg.Error as err:
            log.warning("the heartbeat to the metadata database failed: %s", err)

    def _stop_all(self) -> None:
        running = [w for w in self._workers if w.process is not None]
        for worker in running:
            procs.signal_group(worker.process.pid, procs.signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + self.stop_grace
        for worker in running:
            process = worker.process
            assert process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            procs.signal_group(process.pid, procs.signal.SIGKILL)
            process.wait()
            worker.process = None


def record_pass(folder: Path, started: float) -> None:
    """A complete DAG pass that began at `started` (time.time()): what waiting tasks read
    (dag_wait_child.last_pass_started)."""
    atomic_write(folder / dag_wait.SYNCED, json.dumps({"started": started}))
