"""An environment's metadata database made ready for its Airflow: created, migrated to the
plan's Airflow version, and holding the service user Airdock acts through
(environments.airflow.runtime.identity).

Each part is done once and recorded in the workspace (`DB_FILE`, `ACCESS_FILE`), so a restart
or an update that changes neither the version nor the secret repeats nothing. A fresh database
is migrated and given its user by one Airflow process: starting Airflow costs seconds of CPU,
and a create is waiting for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from environments.airflow.metadb.databases import MetadataDatabases
from environments.airflow.runtime import identity
from environments.airflow.runtime.migration import change_version
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.runtime.supervisor import Launcher
from environments.airflow.runtime.templates import SchemaTemplates
from environments.workspace import Workspace

log = logging.getLogger(__name__)

DB_FILE = "metadata-db.json"  # the schema's Airflow version, for this environment id
ACCESS_FILE = "airflow-users.json"  # the service user made for this database and secret


class DatabasePreparation:
    """`environment_for(plan)` gives the variables an Airflow command of the plan runs with,
    `launch` confines it, `secrets_of(workspace)` reads the environment's secrets and
    `prepare_home(plan)` lays out its Airflow home."""

    def __init__(
        self,
        databases: MetadataDatabases,
        workspace_for: Callable[[str], Workspace],
        environment_for: Callable[[RuntimePlan], dict[str, str]],
        launch: Launcher,
        secrets_of: Callable[[Workspace], dict[str, str]],
        prepare_home: Callable[[RuntimePlan], None],
        templates: SchemaTemplates | None = None,
    ) -> None:
        self._templates = templates
        self.databases = databases
        self._workspace = workspace_for
        self._environment = environment_for
        self._launch = launch
        self._secrets = secrets_of
        self._prepare_home = prepare_home

    def needs_schema(self, plan: RuntimePlan) -> bool:
        done = self._workspace(plan.name).read_json(DB_FILE, {})
        return done.get("version") != plan.airflow_version or done.get("env_id") != plan.env_id

    def prepare(self, plan: RuntimePlan) -> str | None:
        """Create the database, migrate it and make the service user, as far as not done yet;
        None when ready, else what went wrong."""
        try:
            self.databases.ensure(plan.name)  # made by its own step; again after a restore
        except psycopg.Error as err:
            return f"The metadata database server cannot be used: {err}".strip()
        if not self.needs_schema(plan):
            return self.ensure_service_user(plan)
        self._prepare_home(plan)
        began = time.monotonic()
        key = self._access_key(plan)
        if self._copy_template(plan, key):
            self.record_schema(plan)
            self._record_access(plan, key)
            log.info("%s: database copied from its %s template in %.1f s", plan.name,
                     plan.venv.name, time.monotonic() - began)  # fmt: skip
            return None
        problem = identity.ensure_service_user(
            plan, self._environment(plan), self._launch, key, migrate_first=True
        )
        if problem is not None:
            return problem
        self.record_schema(plan)
        self._record_access(plan, key)
        log.info("%s: database migrated to %s and Airdock's Airflow user made in %.1f s",
                 plan.name, plan.airflow_version, time.monotonic() - began)  # fmt: skip
        return None

    def _copy_template(self, plan: RuntimePlan, key: str) -> bool:
        """Make the fresh database a copy of the plan's schema template (runtime.templates),
        with the service user's password set for this environment; False when it cannot
        be, and the database is as it was (empty)."""
        if self._templates is None:
            return False
        template = self._templates.template_for(plan)
        if template is None:
            return False
        try:
            if not self.databases.is_empty(plan.name):
                return False  # not fresh after all: migrated in place, never replaced
        except psycopg.Error:
            return False
        login = identity.service_login(key)
        hashed = identity.password_hash(plan, self._environment(plan), self._launch, login)
        if hashed is None:
            return False
        try:
            address = self.databases.clone(plan.name, template)
            with psycopg.connect(address.libpq_url(), connect_timeout=10) as conn:
                changed = conn.execute(
                    "UPDATE ab_user SET password = %s WHERE username = %s",
                    (hashed, login.username),
                ).rowcount
        except psycopg.Error as err:
            log.warning("%s: not copied from template %s: %s", plan.name, template, err)
            changed = 0
        if changed == 1:
            return True
        # Whatever the copy left goes; the environment starts again from an empty database
        # (if even that fails, the migration that follows says what is wrong).
        with contextlib.suppress(psycopg.Error):
            self.databases.drop(plan.name)
            self.databases.ensure(plan.name)
        return False

    def ensure_service_user(self, plan: RuntimePlan) -> str | None:
        """The service user, made once per database, Airflow version and secret."""
        key = self._access_key(plan)
        if self._workspace(plan.name).read_json(ACCESS_FILE, {}) == self._access(plan, key):
            return None
        self._prepare_home(plan)
        began = time.monotonic()
        problem = identity.ensure_service_user(plan, self._environment(plan), self._launch, key)
        if problem is None:
            self._record_access(plan, key)
            log.info("%s: Airdock's Airflow user made in %.1f s", plan.name,
                     time.monotonic() - began)  # fmt: skip
        return problem

    def change_schema(self, current: RuntimePlan, wanted: RuntimePlan) -> str | None:
        """Move the database from `current`'s Airflow version to `wanted`'s; None when done.
        If the new version then cannot be used, the schema goes back, so that the previous
        version runs again on its own."""
        result = change_version(current, wanted, self._environment, self._launch)
        if not result.ok:
            return result.error
        self.record_schema(wanted)
        problem = self.ensure_service_user(wanted)
        if problem is None:
            return None
        back = change_version(wanted, current, self._environment, self._launch)
        if not back.ok:
            return f"{problem}; restoring the database failed too: {back.error}"
        self.record_schema(current)
        return problem

    def record_schema(self, plan: RuntimePlan) -> None:
        migrated = {"version": plan.airflow_version, "env_id": plan.env_id, "at": time.time()}
        self._workspace(plan.name).write_json(DB_FILE, migrated)

    def _access_key(self, plan: RuntimePlan) -> str:
        return self._secrets(self._workspace(plan.name))[identity.SECRET_NAME]

    @staticmethod
    def _access(plan: RuntimePlan, key: str) -> dict[str, Any]:
        return {
            "version": plan.airflow_version,
            "env_id": plan.env_id,
            "user": identity.SERVICE_USER,
            "key": hashlib.sha256(key.encode()).hexdigest()[:16],
        }

    def _record_access(self, plan: RuntimePlan, key: str) -> None:
        self._workspace(plan.name).write_json(ACCESS_FILE, self._access(plan, key))
