"""Which Airflow metrics MWAA publishes, under which CloudWatch name, dimensions and unit.

The names and dimensions follow the MWAA user guide ("Apache Airflow environment metrics in
CloudWatch"): namespace `AmazonMWAA`, `Environment` first, then `Function` (Scheduler,
Executor, DAG Processing, Triggerer) for the environment-wide metrics, or the DAG, task, pool
or operator the Airflow name carries. Metrics the catalog does not know are not published,
as MWAA publishes a fixed list.

`WorkerCount` is the one metric Airdock adds: MWAA derives the number of running workers from
its containers' metrics, which Airdock has no containers to report, so the control plane
publishes the count it supervises (with remote workers) itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NAMESPACE = "AmazonMWAA"
Dimensions = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Metric:
    name: str
    dimensions: Dimensions  # after Environment
    unit: str


def _fn(function: str) -> Dimensions:
    return (("Function", function),)


# Airflow name (without the statsd prefix) -> (CloudWatch name, Function, unit).
_FIXED: dict[str, tuple[str, str, str]] = {
    "scheduler_heartbeat": ("SchedulerHeartbeat", "Scheduler", "Count"),
    "triggerer_heartbeat": ("TriggererHeartbeat", "Triggerer", "Count"),
    "zombies_killed": ("ZombiesKilled", "Scheduler", "Count"),
    "scheduler.tasks.killed_externally": ("TasksKilledExternally", "Scheduler", "Count"),
    "scheduler.tasks.starving": ("TasksStarving", "Scheduler", "Count"),
    "scheduler.tasks.executable": ("TasksExecutable", "Scheduler", "Count"),
    "scheduler.critical_section_duration": ("CriticalSectionDuration", "Scheduler", "Milliseconds"),
    "executor.queued_tasks": ("QueuedTasks", "Executor", "Count"),
    "executor.running_tasks": ("RunningTasks", "Executor", "Count"),
    "executor.open_slots": ("OpenSlots", "Executor", "Count"),
    "dagbag_size": ("DagBagSize", "DAG Processing", "Count"),
    "dag_processing.total_parse_time": ("TotalParseTime", "DAG Processing", "Seconds"),
    "dag_processing.import_errors": ("ImportErrors", "DAG Processing", "Count"),
    "dag_processing.processes": ("Processes", "DAG Processing", "Count"),
    "dag_processing.processor_timeouts": ("ProcessorTimeouts", "DAG Processing", "Count"),
    "dag_processing.manager_stalls": ("ManagerStalls", "DAG Processing", "Count"),
    "triggers.succeeded": ("TriggersSucceeded", "Triggerer", "Count"),
    "triggers.failed": ("TriggersFailed", "Triggerer", "Count"),
    "triggers.running": ("TriggersRunning", "Triggerer", "Count"),
}
# Task outcomes over the whole environment: MWAA reports them with DAG and Task set to "All".
_ALL_TASKS: dict[str, str] = {
    "ti_successes": "TaskInstanceSuccesses",
    "ti_failures": "TaskInstanceFailures",
}
_PATTERNS: list[tuple[re.Pattern[str], str, tuple[str, ...], str]] = [
    (re.compile(r"^pool\.open_slots\.(?P<a>[^.]+)$"), "OpenSlots", ("Pool",), "Count"),
    (re.compile(r"^pool\.queued_slots\.(?P<a>[^.]+)$"), "QueuedSlots", ("Pool",), "Count"),
    (re.compile(r"^pool\.running_slots\.(?P<a>[^.]+)$"), "RunningSlots", ("Pool",), "Count"),
    (re.compile(r"^pool\.starving_tasks\.(?P<a>[^.]+)$"), "StarvingTasks", ("Pool",), "Count"),
    (re.compile(r"^dagrun\.duration\.success\.(?P<a>.+)$"), "DAGDurationSuccess", ("DAG",),
     "Milliseconds"),
    (re.compile(r"^dagrun\.duration\.failed\.(?P<a>.+)$"), "DAGDurationFailed", ("DAG",),
     "Milliseconds"),
    (re.compile(r"^dagrun\.schedule_delay\.(?P<a>.+)$"), "FirstTaskScheduleDelay", ("DAG",),
     "Milliseconds"),
    (re.compile(r"^ti\.finish\.(?P<a>[^.]+)\.(?P<b>[^.]+)\.(?P<c>[^.]+)$"), "TaskInstanceFinished",
     ("DAG", "Task", "State"), "Count"),
    (re.compile(r"^dag\.(?P<a>[^.]+)\.(?P<b>[^.]+)\.duration$"), "TaskInstanceDuration",
     ("DAG", "Task"), "Milliseconds"),
    (re.compile(r"^operator_successes_(?P<a>\w+)$"), "OperatorSuccesses", ("Operator",), "Count"),
    (re.compile(r"^operator_failures_(?P<a>\w+)$"), "OperatorFailures", ("Operator",), "Count"),
]  # fmt: skip
# Airflow 3 appends the executor's name to its gauges ("executor.open_slots.CeleryExecutor").
_EXECUTOR_SUFFIX = re.compile(r"^(executor\.(?:queued_tasks|running_tasks|open_slots))\.\w+$")

WORKER_COUNT = Metric("WorkerCount", _fn("Celery"), "Count")


def lookup(airflow_name: str) -> Metric | None:
    """The CloudWatch metric for an Airflow metric name (its statsd prefix removed)."""
    name = airflow_name
    suffixed = _EXECUTOR_SUFFIX.match(name)
    if suffixed:
        name = suffixed.group(1)
    fixed = _FIXED.get(name)
    if fixed is not None:
        metric, function, unit = fixed
        return Metric(metric, _fn(function), unit)
    if name in _ALL_TASKS:
        return Metric(_ALL_TASKS[name], (("DAG", "All"), ("Task", "All")), "Count")
    for pattern, metric, keys, unit in _PATTERNS:
        found = pattern.match(name)
        if found:
            values = [v for v in found.groups() if v is not None]
            return Metric(metric, tuple(zip(keys, values, strict=True)), unit)
    return None


class MetricFilter:
    """The user's `metrics.metrics_allow_list` / `metrics.metrics_block_list`, honoured as
    MWAA's sidecar does: comma-separated items, each a prefix of the Airflow name or a regular
    expression found in it. An allow list, when given, wins over the block list."""

    def __init__(self, allow: str | None = None, block: str | None = None) -> None:
        self._allow = _items(allow)
        self._block = _items(block)

    @classmethod
    def from_options(cls, options: dict[str, str]) -> MetricFilter:
        allow, block = "metrics.metrics_allow_list", "metrics.metrics_block_list"
        return cls(options.get(allow), options.get(block))

    def allows(self, airflow_name: str) -> bool:
        if self._allow:
            return _matches(self._allow, airflow_name)
        return not _matches(self._block, airflow_name)


def _items(text: str | None) -> list[tuple[str, re.Pattern[str] | None]]:
    found = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            pattern: re.Pattern[str] | None = re.compile(item)
        except re.error:
            pattern = None
        found.append((item, pattern))
    return found


def _matches(items: Iterable[tuple[str, re.Pattern[str] | None]], name: str) -> bool:
    return any(
        name.startswith(prefix) or (pattern is not None and pattern.search(name))
        for prefix, pattern in items
    )
