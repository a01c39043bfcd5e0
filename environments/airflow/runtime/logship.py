"""Component output to the environment's CloudWatch log groups, as MWAA ships it.

Each component's log file is read from where the last pass stopped; whole lines go to the
group of its LoggingConfiguration module (`airflow-{Name}-{Scheduler|DAGProcessing|...}`),
one stream per component, when the module is enabled, and only lines at or above its
LogLevel. A group that does not exist (the module is off) is skipped by put_lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from environments.aws.clients import AwsClients
from environments.aws.cwlogs import put_lines
from environments.spec import log_group_name

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
# Airflow 2's "{file.py:1} INFO - ..." and Airflow 3's structlog "[info     ] ...".
_LEVEL = re.compile(
    r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\b|\[(debug|info|warning|error|critical)\s*\]"
)
MAX_READ = 1_000_000


def line_level(line: str) -> int | None:
    found = _LEVEL.search(line[:200])
    if not found:
        return None
    word = (found.group(1) or found.group(2)).upper()
    return LEVELS["WARNING" if word == "WARN" else word]


class LogShipper:
    def __init__(self, aws: AwsClients) -> None:
        self.aws = aws
        self._offsets: dict[Path, int] = {}

    def ship(self, supervisor: Any) -> None:
        plan = supervisor.plan
        for component in supervisor.components():
            config = plan.logging.get(component.log_module) or {}
            path = supervisor.log_path(component.name)
            lines = self._new_lines(path)
            if not lines or not config.get("Enabled"):
                continue
            threshold = LEVELS.get(str(config.get("LogLevel", "INFO")).upper(), 20)
            kept = [line for line in lines if (line_level(line) or threshold) >= threshold]
            if kept:
                group = log_group_name(plan.name, component.log_module)
                put_lines(self.aws.client("logs"), group, component.name, kept)

    def _new_lines(self, path: Path) -> list[str]:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return []
        offset = self._offsets.get(path)
        if offset is None or offset > size:
            offset = 0
        if size == offset:
            return []
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(MAX_READ)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offsets[path] = offset + end + 1
        return data[: end + 1].decode(errors="replace").splitlines()
