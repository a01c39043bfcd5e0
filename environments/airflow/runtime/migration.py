"""The metadata database's schema, moved with the environment's own Airflow: `airflow db
migrate` up to a version, `airflow db downgrade` back to an older one (which only the newer
version's Airflow knows how to undo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.supervisor import Launcher
from environments.plumbing import processes as procs

MIGRATE_TIMEOUT = 600.0


@dataclass(frozen=True)
class MigrationResult:
    ok: bool
    error: str | None
    output: str


def migrate(plan: RuntimePlan, env: dict[str, str], launcher: Launcher) -> MigrationResult:
    """Bring the database to the schema of the plan's Airflow version (idempotent), as the
    environment (the migration runs the environment's Airflow and its plugins)."""
    return _airflow_db(plan, ["migrate"], env, launcher)


def change_version(
    current: RuntimePlan,
    wanted: RuntimePlan,
    env_for: Callable[[RuntimePlan], dict[str, str]],
    launcher: Launcher,
) -> MigrationResult:
    """Move the schema from `current`'s Airflow version to `wanted`'s: up with the wanted
    version's Airflow, down with the current one's."""
    if version_key(wanted.airflow_version) >= version_key(current.airflow_version):
        return migrate(wanted, env_for(wanted), launcher)
    arguments = ["downgrade", "--to-version", wanted.airflow_version, "--yes"]
    return _airflow_db(current, arguments, env_for(current), launcher)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _airflow_db(
    plan: RuntimePlan, arguments: list[str], env: dict[str, str], launcher: Launcher
) -> MigrationResult:
    log_path = plan.workspace / "state" / "logs" / "db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    launch = launcher(plan, [plan.venv / "bin" / "airflow", "db", *arguments], env)
    with open(log_path, "a", encoding="utf-8") as log:
        result = procs.run(
            launch.argv,
            timeout=MIGRATE_TIMEOUT,
            env=launch.env,
            cwd=launch.cwd,
            log=log,
            identity=launch.identity(),
        )
    if result.ok:
        return MigrationResult(True, None, result.output)
    why = "timed out" if result.timed_out else f"exited with code {result.returncode}"
    tail = " ".join(result.output.strip().splitlines()[-3:])[-600:]
    return MigrationResult(
        False,
        f"`airflow db {arguments[0]}` of the metadata database {why}: {tail} (log: {log_path})",
        result.output,
    )
