"""A worker host follows the environment's updates: which fields of GetEnvironment its
workers are built from, and when a change is through (the environment AVAILABLE again) so
that the host rebuilds them.

A new Airflow version cannot be followed: the join file (the database's login, the shared
secrets) belongs to the version it was written for, so the host stops and asks for a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FOLLOW_SECONDS = 30.0  # how often the host asks the MWAA API whether the environment changed

# What the workers on a worker host are made from (environments.fleet.setup). MinWorkers and
# MaxWorkers are not among them: a worker host runs the number of workers it was given.
BUILT_FROM = (
    "EnvironmentClass",
    "ExecutionRoleArn",
    "SourceBucketArn",
    "DagS3Path",
    "RequirementsS3Path",
    "RequirementsS3ObjectVersion",
    "PluginsS3Path",
    "PluginsS3ObjectVersion",
    "StartupScriptS3Path",
    "StartupScriptS3ObjectVersion",
    "AirflowConfigurationOptions",
)


class AirflowVersionChanged(Exception):
    """The environment now runs another Airflow version; the message says which."""


def built_from(environment: dict[str, Any]) -> dict[str, Any]:
    return {name: environment.get(name) for name in BUILT_FROM}


@dataclass
class UpdateWatch:
    applied: dict[str, Any]  # GetEnvironment's answer the running workers were built from
    refused: dict[str, Any] | None = None  # what a rebuild failed for: not tried again as is

    def changes(self, current: dict[str, Any]) -> list[str]:
        """The fields of a finished update the workers must be rebuilt for; none while the
        environment is still updating, or when only other fields changed."""
        if current.get("Status") != "AVAILABLE":
            return []
        if current.get("AirflowVersion") != self.applied.get("AirflowVersion"):
            raise AirflowVersionChanged(
                f"the environment now runs Airflow {current.get('AirflowVersion')}, and this "
                f"host's join file is for {self.applied.get('AirflowVersion')}: take a new one "
                "(airdock worker-join) and start airdock worker again"
            )
        wanted, running = built_from(current), built_from(self.applied)
        if wanted == self.refused:
            return []
        return [name for name in BUILT_FROM if wanted[name] != running[name]]
