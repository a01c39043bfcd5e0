"""Run an environment's startup script as MWAA does, once per component kind.

The script is sourced by bash in a clean environment holding MWAA's variables (never the
control plane's own, which may hold secrets), under a time limit. Variables it exports are
kept for the component, except the ones MWAA protects. Its output is returned for the logs.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from environments.airflow import sandbox
from environments.plumbing import processes
from environments.workspace import Workspace

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

    def log_lines(self) -> list[str]:
        """What goes to the startup script's log: its output, then the exports refused."""
        lines = self.output.splitlines()
        if self.ignored:
            lines.append(f"Ignored protected variables: {', '.join(sorted(self.ignored))}")
        return lines

    def failure(self, timeout: float) -> str:
        """Why a run that is not `ok` failed, as a phrase: "exited with code 3"."""
        if self.timed_out:
            return f"timed out after {timeout:.0f} s"
        return f"exited with code {self.exit_code}"


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
    workspace: Workspace | None = None,
) -> StartupRun:
    """Run `script` as the environment that owns `workspace` (environments.airflow.sandbox);
    without a workspace it runs unconfined in `cwd`: on a worker host, where the workers too
    run as the operator who started them (environments.fleet), and in tests."""
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        **variables,
    }
    scratch = sandbox.scratch_dir(workspace) if workspace is not None else cwd
    if workspace is not None:
        sandbox.prepare(workspace)
    tag = secrets.token_hex(8)
    # The script runs from a copy in the sandbox's scratch folder (the original stays among
    # Airdock's files); the environment it ends with is dumped there, by the script's process.
    copy, dump_path = scratch / f"startup-{tag}.sh", scratch / f"startup-{tag}.env"
    shutil.copyfile(script, copy)
    # Source the script, then dump the resulting environment NUL-separated for parsing.
    wrapper = 'source "$1" || exit $?; env -0 > "$2"'
    argv = ["bash", "-c", wrapper, "startup", str(copy), str(dump_path)]
    if workspace is not None:
        launch = sandbox.confine(workspace, argv, base, cwd)
        base, argv = {**launch.env, "HOME": base["HOME"]}, launch.argv
        identity = launch.identity()
        if launch.user is not None:
            os.chown(copy, launch.user, launch.group or -1)
    else:
        identity = {}
    try:
        result = processes.run(argv, timeout=timeout, env=base, cwd=cwd, identity=identity)
        run = StartupRun(
            component=variables.get("MWAA_AIRFLOW_COMPONENT", ""),
            exit_code=result.returncode,
            output=result.output,
            timed_out=result.timed_out,
        )
        if run.ok:
            _collect_exports(run, base, _read_own_file(dump_path, identity.get("user")))
        return run
    finally:
        copy.unlink(missing_ok=True)
        dump_path.unlink(missing_ok=True)


def _read_own_file(path: Path, owner: int | None) -> bytes:
    """The dump the script's process wrote: never through a link it may have planted there
    instead, and only a file of its own (not one of ours it could not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return b""
    with open(fd, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if owner is not None and stat.st_uid != owner:
            return b""
        return handle.read()


def _collect_exports(run: StartupRun, before: dict[str, str], dump: bytes) -> None:
    for entry in dump.split(b"\0"):
        name, sep, value = entry.decode(errors="replace").partition("=")
        if not sep or name in _SHELL_NOISE or before.get(name) == value:
            continue
        if is_protected(name):
            run.ignored.append(name)
            continue
        run.exported[name] = value
