"""The desired configuration of an environment: MWAA's defaults and rules beyond the wire model.

A spec is a plain dict keyed by the botocore member names (ExecutionRoleArn, MaxWorkers, ...),
so it round-trips to GetEnvironment unchanged. `shapes.validate` has already enforced types,
lengths, patterns and enums before anything here runs; this module adds what MWAA checks on
top: defaults, per-class limits, supported versions and cross-field rules.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from environments.errors import ValidationException

SUPPORTED_AIRFLOW_VERSIONS = ("2.7.2", "2.8.1", "2.9.2", "2.10.1", "2.10.3", "2.11.0", "3.0.6")
DEFAULT_AIRFLOW_VERSION = "3.0.6"
DEFAULT_ENVIRONMENT_CLASS = "mw1.small"
LOG_MODULES = ("DagProcessingLogs", "SchedulerLogs", "TaskLogs", "WebserverLogs", "WorkerLogs")
# The suffix MWAA gives each module's log group: airflow-{Name}-{suffix}.
LOG_GROUP_SUFFIX = {
    "DagProcessingLogs": "DAGProcessing",
    "SchedulerLogs": "Scheduler",
    "TaskLogs": "Task",
    "WebserverLogs": "WebServer",
    "WorkerLogs": "Worker",
}
MAX_WORKERS_PER_ENVIRONMENT = 25  # MWAA's default service quota
_WINDOW = re.compile(r"(MON|TUE|WED|THU|FRI|SAT|SUN):([01]\d|2[0-3]):(00|30)")
_CONFIG_KEY_SHAPE = re.compile(r"[a-z][a-z0-9_]*\.[a-z0-9_.]*[a-z0-9_]")
_ARTIFACTS = ("Plugins", "Requirements", "StartupScript")

# Options the runtime sets itself; letting users override them would break the environment.
RESERVED_CONFIG_KEYS = frozenset(
    {
        "core.executor",
        "core.fernet_key",
        "core.load_examples",
        "core.dags_folder",
        "core.plugins_folder",
        "database.sql_alchemy_conn",
        "core.sql_alchemy_conn",
        "celery.broker_url",
        "celery.result_backend",
        "logging.logging_config_class",
        "logging.base_log_folder",
        "operators.default_queue",
        "webserver.secret_key",
        "api_auth.jwt_secret",
        # What the runtime wires each environment's processes together with.
        "api.secret_key",
        "api.host",
        "api.port",
        "api.base_url",
        "api_auth.jwt_algorithm",
        "core.execution_api_server_url",
        "webserver.base_url",
        "webserver.web_server_host",
        "webserver.web_server_port",
        "celery.celery_config_options",
        "celery.worker_enable_remote_control",
        "scheduler.standalone_dag_processor",
        "logging.remote_logging",
        "logging.remote_base_log_folder",
        "logging.remote_log_conn_id",
    }
)


@dataclass(frozen=True)
class ClassLimits:
    """Capacity rules for one EnvironmentClass (see MWAA's environment-class page)."""

    schedulers: tuple[int, int]
    webservers: tuple[int, int]
    max_workers: int
    default_schedulers: int
    default_webservers: int
    tasks_per_worker: int


ENVIRONMENT_CLASSES: dict[str, ClassLimits] = {
    "mw1.micro": ClassLimits((1, 1), (1, 1), 1, 1, 1, 3),
    "mw1.small": ClassLimits((2, 5), (2, 5), MAX_WORKERS_PER_ENVIRONMENT, 2, 2, 5),
    "mw1.medium": ClassLimits((2, 5), (2, 5), MAX_WORKERS_PER_ENVIRONMENT, 2, 2, 10),
    "mw1.large": ClassLimits((2, 5), (2, 5), MAX_WORKERS_PER_ENVIRONMENT, 2, 2, 20),
    "mw1.xlarge": ClassLimits((2, 5), (2, 5), MAX_WORKERS_PER_ENVIRONMENT, 2, 2, 40),
    "mw1.2xlarge": ClassLimits((2, 5), (2, 5), MAX_WORKERS_PER_ENVIRONMENT, 2, 2, 80),
}


def default_logging() -> dict[str, dict[str, Any]]:
    return {module: {"Enabled": module == "TaskLogs", "LogLevel": "INFO"} for module in LOG_MODULES}


def new_spec(params: dict[str, Any]) -> dict[str, Any]:
    """The stored spec for a CreateEnvironment call: the request plus MWAA's defaults."""
    spec = {k: copy.deepcopy(v) for k, v in params.items() if k not in ("Name", "Tags")}
    env_class = spec.setdefault("EnvironmentClass", DEFAULT_ENVIRONMENT_CLASS)
    limits = ENVIRONMENT_CLASSES.get(env_class)
    spec.setdefault("AirflowVersion", DEFAULT_AIRFLOW_VERSION)
    spec.setdefault("MinWorkers", 1)
    spec.setdefault("MaxWorkers", 1 if env_class == "mw1.micro" else 10)
    if limits is not None:
        spec.setdefault("Schedulers", limits.default_schedulers)
        spec.setdefault("MinWebservers", limits.default_webservers)
        spec.setdefault("MaxWebservers", limits.default_webservers)
    spec.setdefault("WebserverAccessMode", "PRIVATE_ONLY")
    spec.setdefault("EndpointManagement", "SERVICE")
    spec.setdefault("AirflowConfigurationOptions", {})
    spec.setdefault("WeeklyMaintenanceWindowStart", "SUN:03:00")
    logging = default_logging()
    logging.update(copy.deepcopy(spec.get("LoggingConfiguration") or {}))
    spec["LoggingConfiguration"] = logging
    check_rules(spec)
    return spec


def updated_spec(current: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Apply an UpdateEnvironment request to a spec. Maps and lists replace; modules merge."""
    spec = copy.deepcopy(current)
    for key, value in params.items():
        if key in ("Name", "WorkerReplacementStrategy"):
            continue
        if key == "NetworkConfiguration":
            spec["NetworkConfiguration"] = {
                **spec.get("NetworkConfiguration", {}),
                "SecurityGroupIds": list(value["SecurityGroupIds"]),
            }
        elif key == "LoggingConfiguration":
            spec["LoggingConfiguration"] = {
                **spec.get("LoggingConfiguration", default_logging()),
                **copy.deepcopy(value),
            }
        else:
            spec[key] = copy.deepcopy(value)
    if "EnvironmentClass" in params and params["EnvironmentClass"] in ENVIRONMENT_CLASSES:
        # Capacity that the new class cannot hold falls back to its defaults unless given.
        limits = ENVIRONMENT_CLASSES[params["EnvironmentClass"]]
        for field, default in (
            ("Schedulers", limits.default_schedulers),
            ("MinWebservers", limits.default_webservers),
            ("MaxWebservers", limits.default_webservers),
        ):
            if field not in params:
                spec[field] = default
        if params["EnvironmentClass"] == "mw1.micro":
            spec.setdefault("MinWorkers", 1)
            for field in ("MinWorkers", "MaxWorkers"):
                if field not in params:
                    spec[field] = 1
    _check_version_change(current.get("AirflowVersion"), spec.get("AirflowVersion"))
    check_rules(spec)
    return spec


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _bridge_version() -> str:
    """The latest supported 2.x: MWAA's one door between Airflow 2 and 3, either way."""
    twos = [v for v in SUPPORTED_AIRFLOW_VERSIONS if _major(v) == "2"]
    return max(twos, key=_version_key)


def _check_version_change(old: str | None, new: str | None) -> None:
    """MWAA's in-place version changes: any supported minor version up or down within a major
    version; across majors only between the latest 2.x (2.11) and 3.x, in either direction.
    From an older 2.x, Airflow 3 takes a minor upgrade first (or a new environment)."""
    if not old or not new or old == new or _major(old) == _major(new):
        return
    if new not in SUPPORTED_AIRFLOW_VERSIONS:
        return  # check_rules says it is not supported
    bridge = _bridge_version()
    if {_major(old), _major(new)} == {"2", "3"} and bridge in (old, new):
        return
    direction = "upgrade" if _version_key(new) > _version_key(old) else "downgrade"
    raise ValidationException(
        f"Unable to {direction} from Apache Airflow version {old} to {new}: a major version "
        f"change in place is only supported between version {bridge} and 3.x. "
        f"Update the environment to {bridge} first, or create a new environment for "
        f"Apache Airflow {new}."
    )


def check_rules(spec: dict[str, Any]) -> None:
    """Raise ValidationException for the first MWAA rule the spec breaks."""
    problems = [*_class_problems(spec), *_field_problems(spec)]
    if problems:
        raise ValidationException("; ".join(problems))


def _class_problems(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    env_class = spec.get("EnvironmentClass", DEFAULT_ENVIRONMENT_CLASS)
    limits = ENVIRONMENT_CLASSES.get(env_class)
    if limits is None:
        known = ", ".join(ENVIRONMENT_CLASSES)
        return [f"EnvironmentClass '{env_class}' is not supported. Valid values: {known}."]
    min_w, max_w = spec.get("MinWorkers", 1), spec.get("MaxWorkers", 10)
    if min_w > max_w:
        problems.append(f"MinWorkers ({min_w}) must be less than or equal to MaxWorkers ({max_w}).")
    if max_w > limits.max_workers:
        problems.append(
            f"MaxWorkers ({max_w}) exceeds the limit of {limits.max_workers} for {env_class}."
        )
    low, high = limits.schedulers
    schedulers = spec.get("Schedulers", limits.default_schedulers)
    if not low <= schedulers <= high:
        problems.append(
            f"Schedulers ({schedulers}) must be between {low} and {high} for {env_class}."
        )
    low, high = limits.webservers
    min_ws = spec.get("MinWebservers", limits.default_webservers)
    max_ws = spec.get("MaxWebservers", limits.default_webservers)
    for field, value in (("MinWebservers", min_ws), ("MaxWebservers", max_ws)):
        if not low <= value <= high:
            problems.append(f"{field} ({value}) must be between {low} and {high} for {env_class}.")
    if min_ws > max_ws:
        problems.append(
            f"MinWebservers ({min_ws}) must be less than or equal to MaxWebservers ({max_ws})."
        )
    return problems


def _field_problems(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    version = spec.get("AirflowVersion", DEFAULT_AIRFLOW_VERSION)
    if version not in SUPPORTED_AIRFLOW_VERSIONS:
        problems.append(
            f"AirflowVersion '{version}' is not supported. "
            f"Supported versions: {', '.join(SUPPORTED_AIRFLOW_VERSIONS)}."
        )
    window = spec.get("WeeklyMaintenanceWindowStart")
    if window is not None and not _WINDOW.fullmatch(window):
        problems.append(
            f"WeeklyMaintenanceWindowStart '{window}' must be DAY:HH:MM in UTC "
            "(DAY one of MON..SUN, MM 00 or 30)."
        )
    for key in spec.get("AirflowConfigurationOptions") or {}:
        if not _CONFIG_KEY_SHAPE.fullmatch(key):
            problems.append(
                f"AirflowConfigurationOptions key '{key}' must be 'section.option' in lower case."
            )
        elif key in RESERVED_CONFIG_KEYS:
            problems.append(
                f"AirflowConfigurationOptions key '{key}' is managed by the service "
                "and cannot be set."
            )
    kms = spec.get("KmsKey")
    if kms is not None and "alias/" in kms:
        problems.append("KmsKey: aliases are not supported; give a key ID or key ARN.")
    dag_path = spec.get("DagS3Path")
    if dag_path is not None:
        problems.extend(_path_problems("DagS3Path", dag_path))
    for artifact in _ARTIFACTS:
        path = spec.get(f"{artifact}S3Path")
        version_id = spec.get(f"{artifact}S3ObjectVersion")
        if path is not None:
            problems.extend(_path_problems(f"{artifact}S3Path", path))
        if version_id is not None and path is None:
            problems.append(f"{artifact}S3ObjectVersion is given without {artifact}S3Path.")
        if version_id == "":
            problems.append(f"{artifact}S3ObjectVersion must not be empty.")
    network = spec.get("NetworkConfiguration") or {}
    subnets = network.get("SubnetIds") or []
    if len(set(subnets)) != len(subnets):
        problems.append("NetworkConfiguration.SubnetIds must name two different subnets.")
    groups = network.get("SecurityGroupIds") or []
    if len(set(groups)) != len(groups):
        problems.append("NetworkConfiguration.SecurityGroupIds must not repeat a group.")
    return problems


def _path_problems(field: str, path: str) -> list[str]:
    if not path:
        return [f"{field} must not be empty."]
    if path.startswith("/"):
        return [f"{field} must be relative to the source bucket, not start with '/'."]
    if any(part == ".." for part in path.split("/")):
        return [f"{field} must not contain '..' segments."]
    return []


def check_tags(tags: dict[str, str]) -> None:
    reserved = sorted(k for k in tags if k.lower().startswith("aws:"))
    if reserved:
        raise ValidationException(
            f"Tags: keys starting with 'aws:' are reserved: {', '.join(reserved)}."
        )


def log_group_name(env_name: str, module: str) -> str:
    return f"airflow-{env_name}-{LOG_GROUP_SUFFIX[module]}"
