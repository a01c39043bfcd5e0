"""Run an environment's startup script as MWAA does, once per component kind.

The script is sourced by bash in a clean environment holding MWAA's variables (never the
control plane's own, which may hold secrets), under a time limit. Variables it exports are
kept for the component, except the ones MWAA protects. Its output is returned for the logs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from environments.plumbing import processes

DEFAULT_TIMEOUT_SECONDS = 300.0  # MWAA allows five minutes
_PROTECTED_EXACT = frozenset(
    {
        "AIRFLOW_HOME",
        "AIRFLOW_VERSION",
        "AIRFLOW__WEBSERVER__BASE_URL",
        "AIRFLOW__API__BASE_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "CUSTOMER_ACCOUNT_ID",
        "MWAA_AIRFLOW_COMPONENT",
        "MWAA_COMMAND",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
    }
)
_PROTECTED_PREFIXES = ("MWAA__", "AIRFLOW_ENV_", "ECS_")
# Variables bash itself sets or changes while running; they are not the script's exports.
_SHELL_NOISE = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


def is_protected(name: str) -> bool:
    return name in _PROTECTED_EXACT or name.startswith(_PROTECTED_PREFIXES)


@dataclass
class StartupRun:
    component: str
    exit_code: int | None  # None when it was stopped for running out of time
    output: str
    timed_out: bool = False
    exported: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def mwaa_variables(
    *,
    component: str,
    env_name: str,
    env_id: str,
    airflow_home: Path,
    airflow_version: str,
    region: str,
    account_id: str,
) -> dict[str, str]:
    return {
        "MWAA_AIRFLOW_COMPONENT": component,
        "MWAA_COMMAND": component,
        "AWS_EXECUTION_ENV": f"Amazon_MWAA_{airflow_version.replace('.', '')}",
        "AIRFLOW_ENV_NAME": env_name,
        "AIRFLOW_ENV_ID": env_id,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW_VERSION": airflow_version,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "CUSTOMER_ACCOUNT_ID": account_id,
        "PYTHONUNBUFFERED": "1",
    }


def run_startup_script(
    script: Path,
    variables: dict[str, str],
    *,
    cwd: Path,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> StartupRun:
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        **variables,
    }
    with tempfile.NamedTemporaryFile(prefix="startup-env-", dir=cwd, delete=False) as dump:
        dump_path = Path(dump.name)
    # Source the script, then dump the resulting environment NUL-separated for parsing.
    wrapper = 'source "$1" || exit $?; env -0 > "$2"'
    try:
        result = processes.run(
            ["bash", "-c", wrapper, "startup", script, dump_path],
            timeout=timeout,
            env=base,
            cwd=cwd,
        )
        run = StartupRun(
            component=variables.get("MWAA_AIRFLOW_COMPONENT", ""),
            exit_code=result.returncode,
            output=result.output,
            timed_out=result.timed_out,
        )
        if run.ok:
            _collect_exports(run, base, dump_path.read_bytes())
        return run
    finally:
        dump_path.unlink(missing_ok=True)


def _collect_exports(run: StartupRun, before: dict[str, str], dump: bytes) -> None:
    for entry in dump.split(b"\0"):
        name, sep, value = entry.decode(errors="replace").partition("=")
        if not sep or name in _SHELL_NOISE or before.get(name) == value:
            continue
        if is_protected(name):
            run.ignored.append(name)
            continue
        run.exported[name] = value
