"""One environment's Airflow processes: started, watched, restarted with backoff, probed.

`tick` does one round of supervision and is called by the runtime's monitor thread; the
reconciler's threads call `replace`, `scale` and `stop`. A lock keeps them apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from environments.airflow.runtime import pidfiles
from environments.airflow.runtime.components import (
    Component,
    fixed_components,
    health_path,
    worker,
)
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.zygote import ForkedComponent, Zygote
from environments.airflow.runtime.zygote import usable as zygote_usable
from environments.plumbing import processes as procs

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 60.0
STABLE_AFTER = 60.0  # a process that ran this long before exiting starts a fresh backoff
STOP_GRACE = 10.0
WORKER_STOP_GRACE = 30.0  # Celery's warm shutdown lets running tasks finish
# A retired set's workers (after an update) finish their running tasks however long they
# take, up to MWAA's own limit for a graceful worker replacement.
WORKER_RETIRE_GRACE = 12 * 3600.0
# A new set of processes (an update) in which a component has exited this often is given up
# rather than waited for: however long each run took on a busy machine, it crash-loops.
CRASH_LOOP_EXITS = 2
# A worker scaled in gets this long to finish its tasks before it is killed: the Celery queue's
# visibility timeout, after which SQS hands an unfinished task's message out again anyway.
RETIRE_GRACE = 1800.0
# A worker leaves only after it was seen running no task at this many checks in a row.
IDLE_CHECKS = 2
PROBE_TIMEOUT = 2.0
# A process this young that is not healthy yet is starting, not failing (Airflow takes tens of
# seconds to import and register on a busy machine).
START_GRACE = 300.0
# The health endpoint's section for each kind whose heartbeat it reports.
HEARTBEAT_SECTION = {
    "scheduler": "scheduler",
    "triggerer": "triggerer",
    "dag-processor": "dag_processor",
}


class Launch(Protocol):
    """How to start a process as the environment (environments.airflow.sandbox.Launch)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mode: str

    def identity(self) -> dict: ...


# (plan, argv, environment) -> how to start it confined to the environment.
Launcher = Callable[[RuntimePlan, list, dict[str, str]], Launch]


@dataclass
class Managed:
    component: Component
    process: subprocess.Popen[bytes] | ForkedComponent | None = None
    started_at: float = 0.0
    restarts: int = 0
    exits: int = 0  # every exit, however long the process ran
    failures: int = 0  # exits in a row that came soon after a start
    next_start: float = 0.0
    last_error: str | None = None
    ready: bool = False
    log_offset: int = 0
    healthy: bool = False
    state: str = "pending"
    idle_checks: int = 0  # checks in a row that found the worker running no task


@dataclass
class Health:
    healthy: bool
    reason: str
    components: dict[str, dict] = field(default_factory=dict)
    workers: int = 0
    # Not healthy only because processes are still starting (within START_GRACE).
    starting: bool = False
    # The set's zygote ({"pid", "starts"}), None while there is none (see runtime.zygote).
    zygote: dict | None = None


class EnvironmentSupervisor:
    def __init__(
        self,
        plan: RuntimePlan,
        *,
        api_port: int,
        environment_for: Callable[[RuntimePlan, Component], dict[str, str]],
        launcher: Launcher,
        generation: int = 0,
        zygote_script: Path | None = None,
    ) -> None:
        self.plan = plan
        self.api_port = api_port
        # Sets replace each other on an update (runtime.rollout); for a while two run side by
        # side, so each set's pid files carry its generation.
        self.generation = generation
        self._environment_for = environment_for
        self._launcher = launcher
        self._lock = threading.RLock()
        self._managed: dict[str, Managed] = {}
        self._retiring: dict[str, Managed] = {}  # scaled in, finishing their tasks
        self._stopping = False
        self.workers_wanted = plan.min_workers
        self.health = Health(False, "starting")
        # Forks the set's processes from one import of Airflow (runtime.zygote): started with
        # the first of them, and again after it exits. None: every process is spawned.
        self._zygote_script = zygote_script
        self._zygote: Zygote | None = None
        self._zygote_starts = 0
        self._layout()

    # --- paths --------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.plan.workspace / "state" / "run"

    @property
    def log_dir(self) -> Path:
        # Under state/ (Airdock's alone), not in the environment's writable home: the shipper
        # reads these files, and user code must not swap one for a link to a secret.
        return self.plan.workspace / "state" / "logs"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _pid_name(self, component: Component) -> str:
        return self._pid_name_for(component.name)

    def _pid_name_for(self, name: str) -> str:
        return name if not self.generation else f"{name}~{self.generation}"

    def _layout(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for component in fixed_components(self.plan):
            self._managed[component.name] = Managed(component)
        for index in range(1, self.workers_wanted + 1):
            component = worker(self.plan, index)
            self._managed[component.name] = Managed(component)

    # --- control ------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._stopping = False
            for managed in self._managed.values():
                if managed.process is None:
                    self._spawn(managed)

    def scale(self, workers: int) -> None:
        """Run `workers` Celery workers; nothing else restarts. New ones take the lowest free
        numbers; surplus ones leave through Celery's warm shutdown (`_retire`), idle ones
        first, then the newest."""
        with self._lock:
            self.workers_wanted = max(workers, 0)
            current = self._workers()
            taken = {_index(m.component) for m in [*current, *self._retiring.values()]}
            index = 0
            for _ in range(self.workers_wanted - len(current)):
                index = next(i for i in range(index + 1, index + len(taken) + 2) if i not in taken)
                managed = Managed(worker(self.plan, index))
                self._managed[managed.component.name] = managed
                if not self._stopping:
                    self._spawn(managed)
            by_preference = sorted(
                current, key=lambda m: (m.idle_checks < IDLE_CHECKS, -_index(m.component))
            )
            self._retire(by_preference[: max(0, len(current) - self.workers_wanted)])

    def retire_idle(self, count: int) -> int:
        """Let up to `count` workers leave that ran no task at the last IDLE_CHECKS checks
        (`observe_idle`); returns how many leave."""
        with self._lock:
            idle = [m for m in self._workers() if m.idle_checks >= IDLE_CHECKS]
            chosen = sorted(idle, key=lambda m: -_index(m.component))[: max(count, 0)]
            self.workers_wanted = len(self._workers()) - len(chosen)
            self._retire(chosen)
            return len(chosen)

    def observe_idle(self) -> None:
        """Count, per worker, the checks in a row at which it ran no task."""
        with self._lock:
            children = procs.children_by_parent()
            for m in self._workers():
                idle = (
                    m.process is not None and m.ready and not _runs_tasks(m.process.pid, children)
                )
                m.idle_checks = m.idle_checks + 1 if idle else 0

    def _workers(self) -> list[Managed]:
        return [m for m in self._managed.values() if m.component.kind == "worker"]

    def _retire(self, leaving: list[Managed]) -> None:
        """Celery's warm shutdown for each: SIGTERM to the worker's main process alone (not its
        group, whose task processes would die of it) makes it stop taking messages, finish
        the tasks it runs and exit; only after RETIRE_GRACE is its group killed."""
        for managed in leaving:
            del self._managed[managed.component.name]
            self._retiring[managed.component.name] = managed
            managed.state = "retiring"
            if managed.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(managed.process.pid, signal.SIGTERM)
        if leaving:
            threading.Thread(target=self._await_retired, args=(leaving,), daemon=True).start()

    def _await_retired(self, leaving: list[Managed]) -> None:
        self._stop_all(leaving, RETIRE_GRACE, signal_first=False)
        with self._lock:
            for managed in leaving:
                self._retiring.pop(managed.component.name, None)

    def stop(self, grace: float = WORKER_STOP_GRACE) -> None:
        """Stop every process: SIGTERM, then SIGKILL after `grace` for workers (Celery's warm
        shutdown lets running tasks finish) and at most STOP_GRACE for the rest."""
        with self._lock:
            self._stopping = True
            self._stop_all([*self._managed.values(), *self._retiring.values()], grace)
            self._stop_zygote()
            for managed in self._managed.values():
                managed.state = "stopped"
            self.health = Health(False, "stopped", self._snapshot(), 0)

    def retire(self, worker_grace: float = WORKER_RETIRE_GRACE) -> None:
        """Stop this set after a newer one took over, losing no task: the schedulers, DAG
        processor and triggerer stop at once; each worker gets Celery's warm shutdown (it takes
        no new task and exits once its running tasks are done); the API server goes last,
        since on Airflow 3 the old workers' tasks report through it. Blocks until done."""
        with self._lock:
            self._stopping = True
            everything = list(self._managed.values())
        web = [m for m in everything if m.component.kind in ("api-server", "webserver")]
        self._stop_all([m for m in everything if m not in web], worker_grace)
        self._stop_all(web, STOP_GRACE)
        with self._lock:
            self._stop_zygote()
            for managed in everything:
                managed.state = "stopped"
            self.health = Health(False, "retired", self._snapshot(), 0)

    def crash_looping(self) -> str | None:
        """Why this new set cannot come up (a component keeps exiting), or None while it may
        still."""
        with self._lock:
            for managed in self._managed.values():
                if managed.exits >= CRASH_LOOP_EXITS:
                    return f"{managed.component.name} keeps exiting: {managed.last_error}"
        return None

    def exits(self) -> int:
        """How often this set's processes have exited, all together."""
        with self._lock:
            return sum(m.exits for m in self._managed.values())

    def _stop_all(self, managed: list[Managed], grace: float, signal_first: bool = True) -> None:
        # The processes as they are now: a shutdown may stop a set that is still retiring.
        running = [(m, m.process) for m in managed if m.process is not None]
        for m, process in running:
            if not signal_first:
                continue
            if m.component.kind == "worker":
                # Celery's warm shutdown: only its main process is told. Signalling the whole
                # group would reach the running tasks too, and they would fail.
                procs.signal_pid(_main_process(process.pid), procs.signal.SIGTERM)
            else:
                procs.signal_group(process.pid, procs.signal.SIGTERM)
        began = time.monotonic()
        for m, process in running:
            # Workers get `grace` to finish their tasks; the rest STOP_GRACE at most.
            limit = grace if m.component.kind == "worker" else min(grace, STOP_GRACE)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, began + limit - time.monotonic()))
            procs.signal_group(process.pid, procs.signal.SIGKILL)
            process.wait()
            m.process = None
            pidfiles.forget(self.run_dir, self._pid_name(m.component))

    def _spawn(self, managed: Managed) -> None:
        component = managed.component
        path = self.log_path(component.name)
        with open(path, "ab") as log:
            managed.log_offset = log.tell()
            header = f"[airdock] starting {component.name}: airflow {' '.join(component.command)}\n"
            log.write(header.encode())
            log.flush()
            launch = self._launcher(
                self.plan,
                [str(self.plan.venv / "bin" / "airflow"), *component.command],
                self._environment_for(self.plan, component),
            )
            managed.process = self._forked(launch, log) or procs.spawn(
                launch.argv,
                env=launch.env,
                cwd=launch.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                **launch.identity(),
            )
        pidfiles.record(self.run_dir, self._pid_name(component), managed.process.pid)
        managed.started_at = time.monotonic()
        managed.ready = False
        managed.healthy = False
        managed.state = "starting"

    def _forked(self, launch: Launch, log: IO[bytes]) -> ForkedComponent | None:
        """The component forked by the set's zygote, or None where it is to be spawned: no
        zygote here, or one that cannot serve it (see runtime.zygote)."""
        if self._zygote_script is None or not zygote_usable(launch):
            return None
        if self._zygote is not None and not self._zygote.alive():
            self._stop_zygote()
        if self._zygote is None:
            try:
                self._zygote = self._start_zygote(launch.env)
            except OSError as err:
                _note(log, f"no zygote ({err}); starting the process itself")
                return None
        if not self._zygote.accepts(launch.env):
            return None
        try:
            return self._zygote.fork(launch.argv, launch.env, launch.cwd, log)
        except OSError as err:
            _note(log, f"the zygote failed ({err}); starting the process itself")
            return None

    def _start_zygote(self, env: dict[str, str]) -> Zygote:
        assert self._zygote_script is not None
        zygote = Zygote.start(
            lambda argv: self._launcher(self.plan, argv, env),
            self.plan.python,
            self._zygote_script,
            self.log_path("zygote"),
        )
        pidfiles.record(self.run_dir, self._pid_name_for("zygote"), zygote.process.pid)
        self._zygote_starts += 1
        return zygote

    def _stop_zygote(self) -> None:
        if self._zygote is not None:
            self._zygote.stop()
            pidfiles.forget(self.run_dir, self._pid_name_for("zygote"))
            self._zygote = None

    # --- supervision --------------------------------------------------------------------

    def tick(self) -> Health:
        with self._lock:
            if self._stopping:
                return self.health
            now = time.monotonic()
            for managed in self._managed.values():
                self._watch(managed, now)
            probe = self._probe()
            self._judge(probe)
            return self.health

    def _watch(self, managed: Managed, now: float) -> None:
        process = managed.process
        if process is not None and process.poll() is not None:
            # What it started is in its group and would outlive it (a worker's pool and
            # helpers, a task's processes): none of it may run beside the component's next start.
            procs.signal_group(process.pid, signal.SIGKILL)
            pidfiles.forget(self.run_dir, self._pid_name(managed.component))
            tail = _last_line(self.log_path(managed.component.name))
            managed.last_error = f"exited with code {process.returncode}" + (
                f": {tail}" if tail else ""
            )
            quick = now - managed.started_at < STABLE_AFTER
            managed.failures = managed.failures + 1 if quick else 1
            managed.exits += 1
            delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (managed.failures - 1))
            managed.next_start = now + delay
            managed.process = None
            managed.state = "backoff"
        if managed.process is None and now >= managed.next_start:
            managed.restarts += 1
            self._spawn(managed)
        if managed.component.kind == "worker" and managed.process is not None and not managed.ready:
            managed.ready = _log_says(
                self.log_path(managed.component.name), managed.log_offset, b" ready."
            )

    def _probe(self) -> dict | None:
        url = f"http://127.0.0.1:{self.api_port}{health_path(self.plan)}"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
                return json.loads(answer.read() or b"{}")
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    def _judge(self, probe: dict | None) -> None:
        problems: list[str] = []
        starting_only = True
        now = time.monotonic()
        for managed in self._managed.values():
            kind = managed.component.kind
            alive = managed.process is not None
            if not alive:
                managed.healthy = False
            elif kind in ("api-server", "webserver"):
                managed.healthy = probe is not None
            elif kind == "worker":
                managed.healthy = managed.ready
            else:
                section = (probe or {}).get(HEARTBEAT_SECTION[kind]) or {}
                managed.healthy = section.get("status") == "healthy"
            if managed.healthy:
                managed.state = "healthy"
                if time.monotonic() - managed.started_at >= STABLE_AFTER:
                    managed.failures = 0
            elif alive:
                managed.state = "starting" if managed.state == "starting" else "unhealthy"
            if not managed.healthy:
                problems.append(self._problem(managed))
                # A first start, young enough; a restart after a crash gets no such grace.
                young = now - managed.started_at < START_GRACE and managed.failures == 0
                starting_only &= alive and managed.state == "starting" and young
        workers = sum(
            1 for m in self._managed.values() if m.component.kind == "worker" and m.healthy
        )
        if workers < self.workers_wanted:
            problems.append(f"{workers} of {self.workers_wanted} workers connected")
        self.health = Health(
            not problems,
            "; ".join(problems),
            self._snapshot(),
            workers,
            starting=bool(problems) and starting_only,
            zygote=self._zygote_report(),
        )

    def _zygote_report(self) -> dict | None:
        if self._zygote is None or not self._zygote.alive():
            return None
        return {"pid": self._zygote.process.pid, "starts": self._zygote_starts}

    def _problem(self, managed: Managed) -> str:
        name = managed.component.name
        if managed.process is None:
            wait = max(0.0, managed.next_start - time.monotonic())
            return f"{name} {managed.last_error or 'is not running'} (restart in {wait:.0f} s)"
        if managed.state == "starting":
            return f"{name} is starting"
        return f"{name} does not heartbeat"

    def _snapshot(self) -> dict[str, dict]:
        return {
            name: {
                "state": m.state,
                "kind": m.component.kind,
                "pid": m.process.pid if m.process is not None else None,
                "forked": isinstance(m.process, ForkedComponent),
                "restarts": m.restarts,
                "last_error": m.last_error,
            }
            for name, m in sorted({**self._retiring, **self._managed}.items())
        }

    def components(self) -> list[Component]:
        with self._lock:
            return [m.component for m in self._managed.values()]


def _main_process(leader: int) -> int:
    """The process a component's group leader runs as: the leader itself, or under
    bubblewrap the first process inside the sandbox."""
    pid = leader
    for _ in range(4):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "bwrap":
                return pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return pid
        if not children:
            return pid
        pid = int(children[0])
    return pid


def _index(component: Component) -> int:
    return int(component.name.rsplit("-", 1)[1])


def _runs_tasks(pid: int, children: dict[int, list[int]]) -> bool:
    """Whether a Celery worker runs a task: its main process forks its pool of processes, and
    a pool process that runs a task has a child of its own (the task's process). Wrappers
    (one child each) above the main process are skipped."""
    main = pid
    while len(children.get(main, [])) == 1 and children.get(children[main][0]):
        main = children[main][0]
    return any(children.get(pool) for pool in children.get(main, []))


def _note(log: IO[bytes], text: str) -> None:
    log.write(f"[airdock] {text}\n".encode())
    log.flush()


def _last_line(path: Path, limit: int = 4096) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            lines = handle.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _log_says(path: Path, offset: int, needle: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return needle in handle.read()
    except OSError:
        return False
