"""A worker on another host waits for a task's DAG file instead of failing on it.

A worker host mirrors the DAG folder from S3 every few seconds, but the control plane's
scheduler queues a new DAG's first task as soon as its own DAG processor has parsed it. The
task can therefore reach a worker host before that host's mirror has the file, and Airflow
3.0 then fails it at start ("DAG not found during start up") without a retry.

So, before a task runs on such a host, Celery's `task_prerun` signal looks for its DAG file.
If the file is missing, the worker asks the host for a sync (it creates `REQUEST` in the sync
folder) and waits until the host has finished a pass that began after the request (`SYNCED`
holds the wall-clock start of the last complete pass). If the file is still missing then, the
DAG is gone from S3 too, and Airflow fails the task as it would anyway.

Both sides use this module: the worker host (Airdock: environments.fleet.worker_host) to take
requests, and the worker (Airflow's Celery process, where it is copied next to the Celery
settings) to wait. It
imports nothing but the standard library at module level, and nothing of Airdock's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

SYNC_DIR_VARIABLE = "AIRDOCK_DAG_SYNC_DIR"  # the Celery settings module names it too
REQUEST = "requested"
SYNCED = "synced.json"  # {"started": time.time() of the last complete pass}, host-written
WAIT_SECONDS = 60.0

log = logging.getLogger("airdock.dag_wait")


def requested(folder: Path) -> bool:
    return (folder / REQUEST).exists()


def take_request(folder: Path) -> bool:
    """The host's side: claim a pending request (before the pass that answers it starts)."""
    try:
        (folder / REQUEST).unlink()
    except FileNotFoundError:
        return False
    return True


def last_pass_started(folder: Path) -> float:
    try:
        return float(json.loads((folder / SYNCED).read_text())["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def dag_file(task_name: str, args: Sequence[object], dags_folder: Path) -> Path | None:
    """The DAG file a Celery task of Airflow's will load, or None if it cannot be told.

    Airflow 3 sends `execute_workload` with the workload's JSON (`dag_rel_path`, relative to
    the DAG bundle, which is the DAG folder here); Airflow 2 sends `execute_command` with an
    `airflow tasks run` argv whose `--subdir` starts with `DAGS_FOLDER` or is absolute."""
    relative: str | None = None
    if task_name == "execute_workload" and args and isinstance(args[0], str):
        try:
            relative = json.loads(args[0]).get("dag_rel_path")
        except (ValueError, AttributeError):
            return None
    elif task_name.endswith("execute_command") and args and isinstance(args[0], list):
        argv = [str(part) for part in args[0]]
        for flag in ("--subdir", "-S"):
            if flag in argv[:-1]:
                relative = argv[argv.index(flag) + 1]
                break
        if relative and relative.startswith("DAGS_FOLDER"):
            relative = relative[len("DAGS_FOLDER") :].lstrip("/")
    if not relative:
        return None
    path = Path(relative)
    # Only files under the mirrored folder are ours to wait for.
    candidate = path if path.is_absolute() else dags_folder / path
    try:
        candidate.resolve().relative_to(dags_folder.resolve())
    except ValueError:
        return None
    return candidate


def wait_for(path: Path, folder: Path, timeout: float, poll: float = 0.2) -> bool:
    """Ask the host for a sync and wait until one that began after the request is done.
    True if `path` exists at the end."""
    if path.exists():
        return True
    asked = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REQUEST).touch()
    log.warning("%s is not on this host yet: waiting up to %.0f s for a sync", path, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if last_pass_started(folder) >= asked:
            break
        time.sleep(poll)
    else:
        log.warning("no sync finished within %.0f s", timeout)
    return path.exists()


def connect() -> None:
    """Wait before every task this Celery worker runs (called by the Celery settings module
    when the worker host set SYNC_DIR_VARIABLE)."""
    from celery.signals import task_prerun

    folder = Path(os.environ[SYNC_DIR_VARIABLE])
    dags_folder = Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", "dags"))

    def before_task(sender: object = None, args: Sequence[object] = (), **_: object) -> None:
        path = dag_file(getattr(sender, "name", "") or "", args or (), dags_folder)
        if path is not None:
            wait_for(path, folder, WAIT_SECONDS)

    task_prerun.connect(before_task, weak=False)
