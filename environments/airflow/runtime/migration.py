"""`airflow db migrate` for an environment's database, with the environment's own Airflow."""

from __future__ import annotations

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
    log_path = plan.workspace / "state" / "logs" / "db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    launch = launcher(plan, [plan.venv / "bin" / "airflow", "db", "migrate"], env)
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
        False, f"Migrating the metadata database {why}: {tail} (log: {log_path})", result.output
    )
