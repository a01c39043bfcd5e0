"""The statsd side of every environment: one loopback UDP port each, one thread for all.

`variables(name, role_arn, options)` gives the settings an environment's Airflow processes
start with (statsd on, this host, the environment's port and prefix); `gauge(...)` records a
value the control plane knows itself (the worker count); `forget(name)` closes the port.

Who publishes, and as whom: the control plane calls PutMetricData on the environment's AWS
as the environment's execution role (MWAA's documented execution role policy grants
cloudwatch:PutMetricData), never with its own rights. A role without that grant gets no
metrics, and the refusal is logged.

Any local process can send a datagram to any port, so each environment's prefix carries a
random token (`airflow.<token>.`) that only its own processes are given: lines without it
are dropped, and no environment can write another one's metrics.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from environments.airflow.metrics.batch import Batch, chunks
from environments.airflow.metrics.catalog import NAMESPACE, Metric, MetricFilter, lookup
from environments.airflow.metrics.outcomes import TaskOutcomes
from environments.airflow.metrics.statsd import Sample, parse_datagram
from environments.aws.clients import AwsClients

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
MAX_DATAGRAM = 65535


@dataclass
class _Environment:
    name: str
    role_arn: str
    filter: MetricFilter
    sock: socket.socket
    prefix: str  # "airflow.<token>."
    batch: Batch
    last_error: str | None = None
    published: int = 0  # metric data accepted by CloudWatch so far
    outcomes: TaskOutcomes | None = None  # task outcomes from the database (Airflow 3)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]


class MetricsHub:
    def __init__(self, aws: AwsClients, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.aws = aws
        self.flush_seconds = flush_seconds
        self._environments: dict[str, _Environment] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="airflow-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        # No last flush: at shutdown the environment's AWS may be gone already, and a
        # window of metrics is not worth delaying the stop for.
        with self._lock:
            for env in self._environments.values():
                self._close(env)
            self._environments.clear()

    def variables(
        self, name: str, role_arn: str, options: dict[str, str], outcomes_from: str | None = None
    ) -> dict[str, str]:
        """What an environment's Airflow processes need to send their metrics here.
        `outcomes_from`: the metadata database to count task outcomes in, for versions whose
        tasks do not send them (environments.airflow.metrics.outcomes)."""
        env = self._register(name, role_arn, options)
        if outcomes_from is None:
            env.outcomes = None
        elif env.outcomes is None or env.outcomes.database_url != outcomes_from:
            env.outcomes = TaskOutcomes(outcomes_from)
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(env.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": env.prefix.rstrip("."),
        }

    def gauge(self, name: str, metric: Metric, value: float) -> None:
        with self._lock:
            env = self._environments.get(name)
        if env is not None:
            env.batch.set_gauge(metric, value)

    def forget(self, name: str) -> None:
        with self._lock:
            env = self._environments.pop(name, None)
            if env is not None:
                self._close(env)

    def status(self, name: str) -> dict[str, Any]:
        with self._lock:
            env = self._environments.get(name)
        if env is None:
            return {}
        return {"port": env.port, "published": env.published, "last_error": env.last_error,
                "dropped": env.batch.dropped}  # fmt: skip

    # --- receiving ----------------------------------------------------------------------

    def _register(self, name: str, role_arn: str, options: dict[str, str]) -> _Environment:
        with self._lock:
            env = self._environments.get(name)
            if env is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                prefix = f"airflow.{secrets.token_hex(8)}."
                env = _Environment(name, role_arn, MetricFilter.from_options(options), sock,
                                   prefix, Batch(name))  # fmt: skip
                self._environments[name] = env
                self._selector.register(sock, selectors.EVENT_READ, name)
            else:
                env.role_arn = role_arn
                env.filter = MetricFilter.from_options(options)
            return env

    def _close(self, env: _Environment) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(env.sock)
        env.sock.close()

    def receive(self, name: str, data: bytes) -> int:
        """Take one datagram for `name`; the number of samples kept."""
        with self._lock:
            env = self._environments.get(name)
        if env is None:
            return 0
        kept = 0
        for sample in parse_datagram(data):
            if not sample.name.startswith(env.prefix):
                continue
            airflow_name = sample.name[len(env.prefix) :]
            metric = lookup(airflow_name)
            if metric is None or not env.filter.allows(airflow_name):
                continue
            env.batch.add(metric, sample)
            kept += 1
        return kept

    def _loop(self) -> None:
        next_flush = time.monotonic() + self.flush_seconds
        while not self._stop.is_set():
            timeout = max(0.0, min(0.5, next_flush - time.monotonic()))
            try:
                events = self._selector.select(timeout) if self._selector.get_map() else []
            except (OSError, ValueError):  # a socket closed under us by forget()
                events = []
            if not events and not self._selector.get_map():
                self._stop.wait(timeout)
            for key, _ in events:
                self._drain_socket(key.fileobj, key.data)  # type: ignore[arg-type]
            if time.monotonic() >= next_flush:
                next_flush = time.monotonic() + self.flush_seconds
                self.flush()

    def _drain_socket(self, sock: socket.socket, name: str) -> None:
        for _ in range(1000):  # bounded: one busy environment must not starve the others
            try:
                data = sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.receive(name, data)

    # --- publishing ---------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            environments = list(self._environments.values())
        for env in environments:
            self._count_outcomes(env)
            data = env.batch.drain()
            if data:
                self._publish(env, data)

    def _count_outcomes(self, env: _Environment) -> None:
        if env.outcomes is None:
            return
        try:
            counts = env.outcomes.poll()
        except psycopg.Error as err:
            log.debug("counting the task outcomes of %s failed: %s", env.name, err)
            return
        for state, name in (("success", "ti_successes"), ("failed", "ti_failures")):
            metric = lookup(name)
            if metric is not None and env.filter.allows(name):
                env.batch.add(metric, Sample(name, float(counts.get(state, 0)), "counter"))

    def _publish(self, env: _Environment, data: list[dict[str, Any]]) -> None:
        try:
            cloudwatch = self.aws.as_role(env.role_arn).client("cloudwatch")
            for chunk in chunks(data):
                cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=chunk)
                env.published += len(chunk)
        except (ClientError, BotoCoreError) as err:
            problem = f"publishing metrics as {env.role_arn} failed: {err}"
            if problem != env.last_error:
                log.warning("environment %s: %s", env.name, problem)
            env.last_error = problem
            return
        env.last_error = None
