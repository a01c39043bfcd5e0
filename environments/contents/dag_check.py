"""DAG integrity checks with the environment's own Airflow.

The DAG files are parsed by a child process running the environment's virtualenv Python (see
dag_check_child.py), so a DAG is judged by the Airflow version and packages it will really run
with, and nothing it imports can touch the control plane. The child gets a throw-away SQLite URL
and never opens it: DagBag parsing needs no metadata database, so no migrations are run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from environments.airflow import sandbox
from environments.plumbing import processes as procs
from environments.workspace import Workspace

CHILD = Path(__file__).resolve().parent / "dag_check_child.py"
PER_FILE_TIMEOUT = 30  # Airflow's own default for core.dagbag_import_timeout

DAG_CHECK_FAILED = "DAG_CHECK_FAILED"
DAG_CHECK_TIMEOUT = "DAG_CHECK_TIMEOUT"


@dataclass(frozen=True)
class DagFileReport:
    path: str  # relative to the dags folder, with "/" separators
    dag_ids: tuple[str, ...]
    errors: tuple[str, ...]  # import errors (tracebacks trimmed by Airflow), cycles, duplicates
    warnings: tuple[str, ...] = ()
    # False when Airflow skipped the file: safe mode only parses files that mention both
    # "airflow" and "dag", so helper modules usually are not parsed (and cannot fail).
    parsed: bool = True
    duration: float | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


class DagCheckError(Exception):
    """The check itself could not run (no Airflow in the venv, timeout); output says why."""

    def __init__(self, code: str, message: str, output: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.output = code, message, output


def check_dags(
    python: Path,
    dags_dir: Path,
    *,
    airflow_home: Path,
    timeout: float = 120.0,
    plugins_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    workspace: Workspace | None = None,
) -> list[DagFileReport]:
    """Parse every DAG file under `dags_dir`; one report per file Airflow would consider.

    With `workspace`, the parser runs as that environment (environments.airflow.sandbox): the
    DAG files' top-level code cannot read Airdock's secrets or write outside the workspace.

    `env` adds settings such as the environment's AirflowConfigurationOptions
    (`AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE`, ...); the folders and the database URL are ours.
    """
    dags_dir = Path(dags_dir).resolve()
    airflow_home = Path(airflow_home).absolute()
    airflow_home.mkdir(parents=True, exist_ok=True)
    if workspace is not None:
        sandbox.prepare(workspace)
        scratch_root = sandbox.scratch_dir(workspace)
    else:
        scratch_root = None
    with tempfile.TemporaryDirectory(prefix="airdock-dagcheck-", dir=scratch_root) as tmp:
        output = Path(tmp) / "report.json"
        child_env = _child_env(dags_dir, airflow_home, plugins_dir, Path(tmp), env)
        argv: list = [python, CHILD, dags_dir, output]
        identity: dict = {}
        if workspace is not None:
            launch = sandbox.confine(workspace, argv, child_env, airflow_home)
            argv, child_env, identity = launch.argv, launch.env, launch.identity()
            if launch.user is not None:  # the child writes its report here
                os.chown(tmp, launch.user, launch.group or -1)
        result = procs.run(
            argv, timeout=timeout, env=child_env, cwd=airflow_home, identity=identity
        )
        if result.timed_out:
            raise DagCheckError(
                DAG_CHECK_TIMEOUT,
                f"Parsing the DAG folder did not finish within {timeout:.0f} seconds.",
                result.output,
            )
        report = _read_report(output, identity.get("user"))
    if report.get("error") or result.returncode != 0 or "files" not in report:
        reason = report.get("error") or result.output[-2000:] or f"exit code {result.returncode}"
        message = f"The DAG check could not run: {reason}"
        raise DagCheckError(DAG_CHECK_FAILED, message, result.output)
    return [
        DagFileReport(
            path=entry["path"],
            dag_ids=tuple(entry["dag_ids"]),
            errors=tuple(entry["errors"]),
            warnings=tuple(entry["warnings"]),
            parsed=entry["parsed"],
            duration=entry.get("duration"),
        )
        for entry in report["files"]
    ]


def _read_report(path: Path, owner: int | None) -> dict:
    """The child's JSON report, never through a link planted in its place."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    with open(fd, "rb") as handle:
        if owner is not None and os.fstat(handle.fileno()).st_uid != owner:
            return {}
        try:
            return json.loads(handle.read())
        except ValueError:
            return {}


def _child_env(
    dags_dir: Path,
    airflow_home: Path,
    plugins_dir: Path | None,
    tmp: Path,
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    # Built from nothing: the control plane's own variables (credentials, AIRDOCK_* settings,
    # its Python and Airflow settings) never reach the DAG files' code.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra or {})
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_dir),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins_dir or airflow_home / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp / 'unused.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        # Bytecode goes next to the Airflow home, not into the synced dags folder (and still
        # caches the venv's own modules, which halves the next check's start-up).
        PYTHONPYCACHEPREFIX=str(airflow_home / ".pycache"),
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", str(PER_FILE_TIMEOUT))
    return env
