"""One environment's samples, aggregated over a flush window into CloudWatch metric data.

Counters are summed (scaled back up by their sample rate) into one value per window; gauges
and timers become statistic sets (SampleCount, Sum, Minimum, Maximum), so that
`get-metric-statistics` answers Sum, Average, Minimum and Maximum as it does on MWAA. A
gauge given as a delta moves from its last value, which outlives the window.

The number of distinct metrics per window is capped: a DAG that emits a new name per run
must not grow the control plane's memory without bound; what exceeds the cap is counted in
`dropped` and left out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from environments.airflow.metrics.catalog import Metric
from environments.airflow.metrics.statsd import Sample

MAX_SERIES = 2000
# PutMetricData takes up to 1000 data per call; smaller calls keep each request small.
CHUNK = 200


@dataclass
class _Series:
    metric: Metric
    kind: str
    total: float = 0.0
    count: int = 0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1
        self.low = min(self.low, value)
        self.high = max(self.high, value)


@dataclass
class Batch:
    environment: str
    series: dict[Metric, _Series] = field(default_factory=dict)
    gauges: dict[Metric, float] = field(default_factory=dict)  # last values, for deltas
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, metric: Metric, sample: Sample) -> None:
        with self._lock:
            series = self.series.get(metric)
            if series is None:
                if len(self.series) >= MAX_SERIES:
                    self.dropped += 1
                    return
                series = self.series[metric] = _Series(metric, sample.kind)
            if sample.kind == "counter":
                series.total += sample.value / sample.rate
                series.count += 1
            elif sample.kind == "gauge":
                value = sample.value
                if sample.delta:
                    value += self.gauges.get(metric, 0.0)
                self.gauges[metric] = value
                series.add(value)
            else:
                series.add(sample.value)

    def set_gauge(self, metric: Metric, value: float) -> None:
        self.add(metric, Sample(metric.name, value, "gauge"))

    def drain(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """The window's metric data (for PutMetricData), and a fresh window."""
        with self._lock:
            series, self.series = self.series, {}
        stamp = now or datetime.now(UTC)
        return [self._datum(s, stamp) for s in series.values() if s.count]

    def _datum(self, series: _Series, stamp: datetime) -> dict[str, Any]:
        dimensions = [{"Name": "Environment", "Value": self.environment}]
        dimensions += [{"Name": k, "Value": v[:1024]} for k, v in series.metric.dimensions]
        datum: dict[str, Any] = {
            "MetricName": series.metric.name,
            "Dimensions": dimensions,
            "Timestamp": stamp,
            "Unit": series.metric.unit,
        }
        if series.kind == "counter":
            datum["Value"] = series.total
        else:
            datum["StatisticValues"] = {
                "SampleCount": float(series.count),
                "Sum": series.total,
                "Minimum": series.low,
                "Maximum": series.high,
            }
        return datum


def chunks(data: list[dict[str, Any]], size: int = CHUNK) -> list[list[dict[str, Any]]]:
    return [data[i : i + size] for i in range(0, len(data), size)]
