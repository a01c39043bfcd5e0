"""MWAA's metrics from Airflow's statsd stream: the wire format, MWAA's names and dimensions,
the allow/block lists, the per-window aggregation, and the per-environment UDP port with its
prefix token (datagrams without it are dropped)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import pytest

from environments.airflow.metrics.batch import MAX_SERIES, Batch, chunks
from environments.airflow.metrics.catalog import WORKER_COUNT, Metric, MetricFilter, lookup
from environments.airflow.metrics.hub import MetricsHub
from environments.airflow.metrics.statsd import Sample, parse_datagram, parse_line
from environments.aws.clients import AwsClients, AwsTarget


def test_statsd_lines_parse_as_airflow_sends_them() -> None:
    assert parse_line("airflow.scheduler_heartbeat:1|c") == Sample(
        "airflow.scheduler_heartbeat", 1.0, "counter"
    )
    assert parse_line("airflow.ti_failures:1|c|@0.5") == Sample(
        "airflow.ti_failures", 1.0, "counter", rate=0.5
    )
    assert parse_line("airflow.executor.open_slots:-2|g") == Sample(
        "airflow.executor.open_slots", -2.0, "gauge", delta=True
    )
    assert parse_line("airflow.dag_processing.total_parse_time:1.25|g").delta is False
    assert parse_line("airflow.dagrun.duration.success.d:812.5|ms").kind == "timer"
    assert parse_line("airflow.x:3|h|#tag:a").kind == "timer"


@pytest.mark.parametrize(
    "line",
    ["", "noseparator", "a:1", "a:x|c", "a:1|q", "a:1|s", "a:nan|g", "a:inf|c", "a:1|c|@0",
     "a:1|c|@2", "a:1|c|@x", "with space:1|c", ":1|c", "a" * 300 + ":1|c"],
)  # fmt: skip
def test_malformed_lines_are_dropped(line: str) -> None:
    assert parse_line(line) is None


def test_one_bad_line_costs_only_itself() -> None:
    data = b"airflow.a:1|c\n\xff\xfe:garbage\nairflow.b:2|g\n"
    assert [s.name for s in parse_datagram(data)] == ["airflow.a", "airflow.b"]


def test_catalog_uses_mwaa_names_and_dimensions() -> None:
    assert lookup("executor.queued_tasks") == Metric(
        "QueuedTasks", (("Function", "Executor"),), "Count"
    )
    # Airflow 3 appends the executor's name.
    assert lookup("executor.running_tasks.CeleryExecutor") == Metric(
        "RunningTasks", (("Function", "Executor"),), "Count"
    )
    assert lookup("scheduler_heartbeat").dimensions == (("Function", "Scheduler"),)
    assert lookup("dagbag_size") == Metric("DagBagSize", (("Function", "DAG Processing"),), "Count")
    assert lookup("dag_processing.total_parse_time").unit == "Seconds"
    assert lookup("ti_successes").dimensions == (("DAG", "All"), ("Task", "All"))
    assert lookup("ti.finish.etl.load.success") == Metric(
        "TaskInstanceFinished", (("DAG", "etl"), ("Task", "load"), ("State", "success")), "Count"
    )
    assert lookup("pool.open_slots.default_pool").dimensions == (("Pool", "default_pool"),)
    assert lookup("dagrun.duration.failed.my.dag").dimensions == (("DAG", "my.dag"),)
    assert lookup("operator_failures_BashOperator").dimensions == (("Operator", "BashOperator"),)
    assert lookup("something_new") is None


def test_allow_and_block_lists() -> None:
    everything = MetricFilter()
    assert everything.allows("scheduler_heartbeat")
    allow = MetricFilter(allow="scheduler,executor", block="scheduler")
    assert allow.allows("scheduler_heartbeat") and allow.allows("executor.open_slots")
    assert not allow.allows("dagbag_size")
    block = MetricFilter(block="ti\\.finish\\..*, pool")
    assert not block.allows("ti.finish.d.t.success") and not block.allows("pool.open_slots.x")
    assert block.allows("ti_successes")
    broken = MetricFilter(block="dag[")  # not a regular expression: a prefix still
    assert not broken.allows("dag[x") and broken.allows("dagbag_size")
    options = {"metrics.metrics_allow_list": "dagbag_size"}
    assert MetricFilter.from_options(options).allows("dagbag_size")
    assert not MetricFilter.from_options(options).allows("scheduler_heartbeat")


def test_batch_sums_counters_and_keeps_statistics_of_gauges_and_timers() -> None:
    batch = Batch("env-a")
    heartbeat = lookup("scheduler_heartbeat")
    queued = lookup("executor.queued_tasks")
    parse = lookup("scheduler.critical_section_duration")
    for _ in range(3):
        batch.add(heartbeat, Sample("x", 1, "counter"))
    batch.add(heartbeat, Sample("x", 1, "counter", rate=0.5))  # one of two sent
    batch.add(queued, Sample("x", 4, "gauge"))
    batch.add(queued, Sample("x", -1, "gauge", delta=True))
    batch.add(parse, Sample("x", 10, "timer"))
    batch.add(parse, Sample("x", 30, "timer"))
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    data = {d["MetricName"]: d for d in batch.drain(stamp)}
    assert data["SchedulerHeartbeat"]["Value"] == 5.0
    assert data["SchedulerHeartbeat"]["Dimensions"] == [
        {"Name": "Environment", "Value": "env-a"},
        {"Name": "Function", "Value": "Scheduler"},
    ]
    assert data["QueuedTasks"]["StatisticValues"] == {
        "SampleCount": 2.0, "Sum": 7.0, "Minimum": 3.0, "Maximum": 4.0
    }  # fmt: skip
    assert data["CriticalSectionDuration"]["Unit"] == "Milliseconds"
    assert data["CriticalSectionDuration"]["StatisticValues"]["Sum"] == 40.0
    assert all(d["Timestamp"] == stamp for d in data.values())
    assert batch.drain() == []  # a fresh window
    batch.add(queued, Sample("x", 2, "gauge", delta=True))  # the last value outlives a window
    assert batch.drain()[0]["StatisticValues"]["Maximum"] == 5.0


def test_batch_caps_distinct_series() -> None:
    batch = Batch("env-a")
    for i in range(MAX_SERIES + 5):
        batch.add(lookup(f"ti.finish.dag{i}.t.success"), Sample("x", 1, "counter"))
    assert batch.dropped == 5
    data = batch.drain()
    assert len(data) == MAX_SERIES
    assert [len(c) for c in chunks(data, 800)] == [800, 800, 400]


def test_hub_keeps_only_its_environments_prefixed_lines_over_udp() -> None:
    # Nothing is published here: the clients point nowhere and the batches are drained by hand.
    hub = MetricsHub(AwsClients(AwsTarget("us-east-1", "http://127.0.0.1:9")), flush_seconds=3600)
    hub.start()
    try:
        mine = hub.variables("env-a", "arn:aws:iam::123456789012:role/r", {})
        other = hub.variables("env-b", "arn:aws:iam::123456789012:role/r", {})
        assert mine["AIRFLOW__METRICS__STATSD_ON"] == "True"
        assert mine["AIRFLOW__METRICS__STATSD_PORT"] != other["AIRFLOW__METRICS__STATSD_PORT"]
        assert hub.variables("env-a", "arn:aws:iam::123456789012:role/r", {}) == mine  # stable
        prefix = mine["AIRFLOW__METRICS__STATSD_PREFIX"]
        assert prefix.startswith("airflow.") and prefix != other["AIRFLOW__METRICS__STATSD_PREFIX"]
        port = int(mine["AIRFLOW__METRICS__STATSD_PORT"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(f"{prefix}.scheduler_heartbeat:1|c\n{prefix}.dagbag_size:3|g".encode(),
                          ("127.0.0.1", port))  # fmt: skip
            # Forged: another environment's prefix, and the bare MWAA prefix.
            forged = other["AIRFLOW__METRICS__STATSD_PREFIX"]
            sender.sendto(f"{forged}.scheduler_heartbeat:9|c".encode(), ("127.0.0.1", port))
            sender.sendto(b"airflow.scheduler_heartbeat:9|c", ("127.0.0.1", port))
        hub.gauge("env-a", WORKER_COUNT, 2)
        deadline = time.monotonic() + 10
        found: dict[str, dict] = {}
        while time.monotonic() < deadline and "DagBagSize" not in found:
            time.sleep(0.05)
            found |= {d["MetricName"]: d for d in hub._environments["env-a"].batch.drain()}
        assert found["SchedulerHeartbeat"]["Value"] == 1.0
        assert found["DagBagSize"]["StatisticValues"]["Maximum"] == 3.0
        assert found["WorkerCount"]["StatisticValues"]["Maximum"] == 2.0
        hub.forget("env-b")
        assert hub.status("env-b") == {}
    finally:
        for env in hub._environments.values():
            env.batch.drain()
        hub.stop()


@pytest.mark.postgres
def test_task_outcomes_are_counted_from_the_database_once(postgres_url: str) -> None:
    import psycopg

    from environments.airflow.metrics.outcomes import TaskOutcomes

    libpq = postgres_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE task_instance (state text, end_date timestamptz)")
        conn.execute("INSERT INTO task_instance VALUES ('success', now())")  # before: not counted
    outcomes = TaskOutcomes(postgres_url)
    assert outcomes.poll() == {}  # the first look sets the watermark
    with psycopg.connect(libpq, autocommit=True) as conn:
        for state in ("success", "success", "failed", "running", "up_for_retry"):
            conn.execute("INSERT INTO task_instance VALUES (%s, now())", (state,))
        conn.execute("INSERT INTO task_instance VALUES ('success', NULL)")
    assert outcomes.poll() == {"success": 2, "failed": 1}
    assert outcomes.poll() == {}  # each ending counts once
