"""Task outcomes read from the metadata database, for Airflow versions whose tasks send none.

Airflow 3's task runner emits no `ti_successes` / `ti_failures` over statsd (Airflow 2's
workers do), so for 3.x the control plane counts the task instances that ended in `success`
or `failed` since its last look, and reports them as MWAA's TaskInstanceSuccesses and
TaskInstanceFailures. The watermark is the database's own clock, so hosts' clocks never skew
the count; the first look only sets the watermark (no backlog is replayed after a restart).
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from environments.airflow.metadb.databases import libpq_url

STATES = ("success", "failed")


class TaskOutcomes:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._since: datetime | None = None

    def poll(self) -> dict[str, int]:
        """{state: task instances that ended in it since the last poll}."""
        with psycopg.connect(libpq_url(self.database_url), connect_timeout=3) as conn:
            (now,) = conn.execute("SELECT now()").fetchone()  # type: ignore[misc]
            since, self._since = self._since, now
            if since is None:
                return {}
            rows = conn.execute(
                "SELECT state, count(*) FROM task_instance WHERE end_date > %s "
                "AND end_date <= %s AND state = ANY(%s) GROUP BY state",
                (since, now, list(STATES)),
            ).fetchall()
        return {state: int(count) for state, count in rows}
