"""`airflow db migrate` for an environment's database, with the environment's own Airflow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from environments.airflow.runtime.plan import RuntimePlan
from environments.plumbing import processes as procs

MIGRATE_TIMEOUT = 600.0


@dataclass(frozen=True)
class MigrationResult:
    ok: bool
    error: str | None
    output: str


def migrate(plan: RuntimePlan, env: dict[str, str], home: Path) -> MigrationResult:
    """Bring the database to the schema of the plan's Airflow version (idempotent)."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "logs" / "components" / "db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        result = procs.run(
            [plan.venv / "bin" / "airflow", "db", "migrate"],
            timeout=MIGRATE_TIMEOUT,
            env=env,
            cwd=home,
            log=log,
        )
    if result.ok:
        return MigrationResult(True, None, result.output)
    why = "timed out" if result.timed_out else f"exited with code {result.returncode}"
    tail = " ".join(result.output.strip().splitlines()[-3:])[-600:]
    return MigrationResult(
        False, f"Migrating the metadata database {why}: {tail} (log: {log_path})", result.output
    )
