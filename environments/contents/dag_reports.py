"""Parse an environment's DAGs with its own Airflow and keep the result where users see it:
`state/dag-report.json` (behind `airdock env dags NAME`) and, for files with errors, the
environment's DAGProcessing log group."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from environments.airflow.venv_store import current_venv
from environments.aws.cwlogs import put_lines
from environments.contents.dag_check import DagCheckError, check_dags
from environments.host import HostServices
from environments.plumbing.repeats import RepeatLimiter
from environments.spec import log_group_name

log = logging.getLogger(__name__)
_repeats = RepeatLimiter(log, interval=300.0)

REPORT = "dag-report.json"
ERROR_STREAM = "dag_processing_errors"


def refresh_dag_report(services: HostServices, name: str, spec: dict[str, Any]) -> dict | None:
    """Parse the DAG folder and store the report; None when no Airflow venv exists yet."""
    workspace = services.workspace(name)
    venv = current_venv(workspace.venv)
    if venv is None:
        return None
    options = {
        "AIRFLOW__" + key.replace(".", "__", 1).upper(): value
        for key, value in (spec.get("AirflowConfigurationOptions") or {}).items()
    }
    try:
        files = check_dags(
            venv / "bin" / "python",
            workspace.dags,
            airflow_home=workspace.home,
            plugins_dir=workspace.plugins,
            env=options,
            workspace=workspace,
        )
        report = {
            "checked_at": time.time(),
            "files": [
                {"file": f.path, "dag_ids": list(f.dag_ids), "errors": list(f.errors)}
                for f in files
                if f.parsed or f.errors
            ],
        }
    except DagCheckError as err:
        report = {"checked_at": time.time(), "files": [], "error": err.message}
    _log_errors(services, name, spec, report)
    workspace.write_json(REPORT, report)  # last: once it exists, the logs hold the errors too
    return report


def _log_errors(services: HostServices, name: str, spec: dict[str, Any], report: dict) -> None:
    config = (spec.get("LoggingConfiguration") or {}).get("DagProcessingLogs") or {}
    if not config.get("Enabled"):
        return
    lines = [f"DAG check failed: {report['error']}"] if report.get("error") else []
    for entry in report["files"]:
        for error in entry["errors"]:
            lines.append(f"{entry['file']}: {error}")
    if lines:
        try:
            put_lines(
                services.aws.client("logs"),
                log_group_name(name, "DagProcessingLogs"),
                ERROR_STREAM,
                lines,
            )
        except Exception as err:
            _repeats.warning(
                ("cloudwatch", name, repr(err)),
                "could not write DAG errors of %s to CloudWatch",
                name,
                exc_info=True,
            )


class DagReporter:
    """Re-parses an environment's DAGs after its mirror changed, one environment at a time;
    requests that arrive while a check runs are merged into the next one."""

    def __init__(self, services: HostServices, spec_of: Any) -> None:
        self._services = services
        self._spec_of = spec_of  # name -> spec dict or None (the environment is gone)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dag-reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def request(self, name: str) -> None:
        with self._lock:
            self._pending.add(name)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    if not self._pending:
                        break
                    name = self._pending.pop()
                try:
                    spec = self._spec_of(name)
                    if spec is not None:
                        refresh_dag_report(self._services, name, spec)
                except Exception as err:
                    _repeats.error(
                        ("check", name, repr(err)), "DAG check of %s failed", name, exc_info=True
                    )
