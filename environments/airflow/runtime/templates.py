"""Metadata databases copied from a template instead of migrated.

Why: a fresh database costs a create one Airflow process of its own, which imports Airflow,
creates the schema, syncs FAB's roles and makes Airdock's service user: 8-10 s of a create of
about 30 s here. A template built once per Airflow virtualenv turns that into a PostgreSQL copy
(`CREATE DATABASE ... TEMPLATE`) and one UPDATE of the service user's password
(runtime.preparation).

Trust: a template is copied into every environment of its virtualenv, so nothing any
environment controls may run while it is built. Only a virtualenv built from Airdock's lock
alone (no requirements.txt packages; its venv marker says so) gets one. The builder is that
virtualenv's Airflow, running as Airdock in a workspace of Airdock's own under
`<data dir>/templates/<venv name>`: no DAGs, plugins, startup script or configuration options
of anyone, and secrets of its own. The template's role may log in only while it is built; the
database then takes no connection ever again (environments.airflow.metadb.databases).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import stat
from pathlib import Path

import psycopg

from environments.airflow import sandbox
from environments.airflow.metadb.databases import DatabaseAddress, MetadataDatabases
from environments.airflow.runtime import configuration, identity
from environments.airflow.runtime.home import aws_folder, install_support_files, runtime_secrets
from environments.airflow.runtime.plan import RuntimePlan
from environments.airflow.venv_store import MARKER
from environments.workspace import Workspace

log = logging.getLogger(__name__)

TEMPLATE_ENVIRONMENT = "schema-template"
# Options a migration writes into the database (Airflow's log_template table): an environment
# that sets one migrates its own, so that its value is the one recorded.
MIGRATION_READS = {"logging.log_filename_template", "elasticsearch.log_id_template"}


class SchemaTemplates:
    """Templates on the metadata server of `databases`, built in folders under `root`."""

    def __init__(self, databases: MetadataDatabases, root: Path) -> None:
        self.databases = databases
        self.root = root

    def template_for(self, plan: RuntimePlan) -> str | None:
        """The template database for the plan's virtualenv, built now if needed; None when
        the virtualenv may not have one or building it failed."""
        if not lock_only(plan.venv) or MIGRATION_READS & {k.lower() for k in plan.options}:
            return None
        name = self.databases.template_name(plan.venv.name)
        try:
            built = self.databases.build_template(name, lambda at: self._fill(plan, at))
        except psycopg.Error as err:
            log.warning("%s: no schema template for %s: %s", plan.name, plan.venv.name, err)
            return None
        return name if built else None

    def _fill(self, plan: RuntimePlan, address: DatabaseAddress) -> bool:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # Airdock's alone, as the build runs as Airdock
        workspace = Workspace(self.root / plan.venv.name)
        workspace.create()
        install_support_files(workspace)
        neutral = dataclasses.replace(
            plan,
            name=TEMPLATE_ENVIRONMENT,
            options={},
            workspace=workspace.root,
            database_url=address.sqlalchemy_url(),
            web_url="",
            extras={},
        )
        folder = aws_folder(workspace)
        env = configuration.component_environment(
            neutral,
            "scheduler",  # as MWAA's scheduler container runs the migration
            startup_exports={},
            api_port=0,
            secrets=runtime_secrets(workspace),
            aws_config=folder / "config",
            aws_credentials=folder / "credentials",
        )
        problem = identity.ensure_service_user(
            neutral,
            env,
            _as_airdock,
            secrets.token_urlsafe(32),  # a password nobody knows: each copy gets its own
            migrate_first=True,
        )
        _close(self.root)
        if problem is not None:
            log.warning("building the schema template of %s failed: %s", plan.venv.name, problem)
            return False
        return True


def _close(root: Path) -> None:
    """Nothing of the build is for other accounts (the support files are written readable,
    for environments' accounts elsewhere)."""
    for folder, _dirs, files in os.walk(root):
        for path in (folder, *(os.path.join(folder, name) for name in files)):
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o007:
                os.chmod(path, stat.S_IMODE(mode) & ~0o007)


def lock_only(venv: Path) -> bool:
    """Whether the virtualenv holds Airdock's lock and nothing else."""
    try:
        marker = json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("requirements") == "none"


def _as_airdock(plan: RuntimePlan, argv: list, env: dict[str, str]) -> sandbox.Launch:
    """Unconfined: what runs is Airdock's lock and configuration, in Airdock's folder."""
    home = plan.workspace / "home"
    full_env = {**env, "HOME": str(home), "TMPDIR": str(home)}
    return sandbox.Launch([str(part) for part in argv], full_env, home, home, mode=sandbox.NONE)
