"""A task on a worker host waits for its DAG file: which file a Celery message names (and
never one outside the DAG folder), and the request/pass handshake with the host. The
whole path, with Celery and a real second host, is in tests/e2e/test_fleet_hosts.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from environments.airflow.runtime import dag_wait_child as dag_wait
from environments.fleet.worker_host import PassSchedule, record_pass


def workload(rel: str) -> str:
    return json.dumps({"type": "ExecuteTask", "dag_rel_path": rel, "token": "t", "ti": {}})


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


def test_the_dag_file_of_an_airflow_3_workload(dags: Path) -> None:
    assert dag_wait.dag_file("execute_workload", [workload("a/b.py")], dags) == dags / "a/b.py"


def test_the_dag_file_of_an_airflow_2_command(dags: Path) -> None:
    argv = ["airflow", "tasks", "run", "d", "t", "r", "--local", "--subdir", "DAGS_FOLDER/x.py"]
    name = "airflow.providers.celery.executors.celery_executor_utils.execute_command"
    assert dag_wait.dag_file(name, [argv], dags) == dags / "x.py"
    absolute = [*argv[:-1], str(dags / "y.py")]
    assert dag_wait.dag_file(name, [absolute], dags) == dags / "y.py"


@pytest.mark.parametrize(
    "task, args",
    [
        ("execute_workload", [workload("../../etc/passwd")]),
        ("execute_workload", [workload("/etc/passwd")]),
        ("execute_command", [["airflow", "tasks", "run", "--subdir", "/etc/passwd"]]),
        ("execute_command", [["airflow", "tasks", "run", "--subdir", "DAGS_FOLDER/../x.py"]]),
        ("execute_workload", ["{not json"]),
        ("execute_workload", ["[1, 2]"]),
        ("execute_workload", [workload("")]),
        ("execute_workload", []),
        ("execute_command", [["airflow", "tasks", "run", "--subdir"]]),
        ("some_other_task", [workload("a.py")]),
    ],
)
def test_nothing_outside_the_dag_folder_or_unreadable_is_waited_for(
    dags: Path, task: str, args: list
) -> None:
    assert dag_wait.dag_file(task, args, dags) is None


def test_a_link_out_of_the_dag_folder_is_not_waited_for(dags: Path, tmp_path: Path) -> None:
    (dags / "out").symlink_to(tmp_path)
    assert dag_wait.dag_file("execute_workload", [workload("out/x.py")], dags) is None


def host(folder: Path, publish: Path | None, stop: threading.Event, failures: int = 0) -> None:
    """The worker host's side, as WorkerHost runs it: the host's own pass schedule, with a
    periodic pass too far off to matter; claim, sync (the first `failures` passes fail, as
    when S3 cannot be reached), record."""
    passes = PassSchedule(every=3600.0, retry=0.2)
    passes.passed(True, time.monotonic())  # the pass of join(): the next periodic one is late
    while not stop.is_set():
        if passes.due(time.monotonic(), dag_wait.requested(folder)):
            dag_wait.take_request(folder)
            started = time.time()
            ok = failures <= 0
            failures -= 1
            if ok:
                if publish is not None:
                    publish.write_text("# the DAG")
                record_pass(folder, started)
            passes.passed(ok, time.monotonic())
        stop.wait(0.05)


def run_host(folder: Path, publish: Path | None, failures: int = 0) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=host, args=(folder, publish, stop, failures), daemon=True).start()
    return stop


def test_a_missing_file_is_synced_on_request(dags: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sync"
    record_pass(folder, time.time() - 60)  # an older pass does not answer
    stop = run_host(folder, dags / "new.py")
    try:
        assert dag_wait.wait_for(dags / "new.py", folder, timeout=20, poll=0.02)
    finally:
        stop.set()
    assert not dag_wait.requested(folder)


def test_a_failed_pass_is_tried_again_while_the_task_waits(dags: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sync"
    stop = run_host(folder, dags / "new.py", failures=2)
    try:
        began = time.monotonic()
        assert dag_wait.wait_for(dags / "new.py", folder, timeout=20, poll=0.02)
        assert time.monotonic() - began < 10  # the retries, not the hour-long period
    finally:
        stop.set()


def test_the_pass_schedule() -> None:
    passes = PassSchedule(every=30.0, retry=2.0)
    assert passes.due(0.0, requested=False)  # the first pass is at once
    passes.passed(True, 100.0)
    assert not passes.due(129.0, requested=False) and passes.due(130.0, requested=False)
    assert passes.due(101.0, requested=True)  # a waiting task does not wait for the period
    passes.passed(False, 200.0)
    assert not passes.due(201.9, requested=False) and passes.due(202.0, requested=False)
    short = PassSchedule(every=1.0, retry=2.0)
    short.passed(False, 0.0)
    assert short.due(1.0, requested=False)  # a retry never comes later than the period


def test_a_file_gone_from_s3_too_ends_the_wait_after_one_pass(dags: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sync"
    stop = run_host(folder, None)
    try:
        began = time.monotonic()
        assert not dag_wait.wait_for(dags / "gone.py", folder, timeout=20, poll=0.02)
        assert time.monotonic() - began < 10  # answered by the pass, not by the timeout
    finally:
        stop.set()


def test_a_present_file_asks_for_nothing(dags: Path, tmp_path: Path) -> None:
    (dags / "here.py").write_text("")
    folder = tmp_path / "sync"
    assert dag_wait.wait_for(dags / "here.py", folder, timeout=5)
    assert not dag_wait.requested(folder)


def test_without_a_host_the_wait_ends_at_its_timeout(dags: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sync"
    assert not dag_wait.wait_for(dags / "late.py", folder, timeout=0.3, poll=0.05)
    assert dag_wait.requested(folder)  # left for the host, which answers it when it can


def test_an_unreadable_pass_record_counts_as_none(tmp_path: Path) -> None:
    assert dag_wait.last_pass_started(tmp_path) == 0.0
    (tmp_path / dag_wait.SYNCED).write_text("{broken")
    assert dag_wait.last_pass_started(tmp_path) == 0.0
    (tmp_path / dag_wait.SYNCED).write_text('{"started": "x"}')
    assert dag_wait.last_pass_started(tmp_path) == 0.0
