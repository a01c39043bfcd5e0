"""The environment's Airflow metadata database: made before anything runs, dropped on delete."""

from __future__ import annotations

import psycopg

from environments.provisioning.step import DONE, Outcome, RetryLater, StepContext


class MetadataDatabase:
    name = "metadata-database"

    def ensure(self, ctx: StepContext) -> Outcome:
        databases = ctx.services.metadata_databases
        if databases is None:
            return DONE
        try:
            address = databases.ensure(ctx.name)
        except psycopg.Error as error:  # the server restarting, or briefly unreachable
            return RetryLater(f"the metadata database server is not available: {error}")
        ctx.resources["metadata_database"] = {
            "host": address.host,
            "port": address.port,
            "database": address.database,
        }
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        databases = ctx.services.metadata_databases
        if databases is not None:
            try:
                databases.drop(ctx.name)
            except psycopg.Error as error:
                return RetryLater(f"the metadata database server is not available: {error}")
        ctx.resources.pop("metadata_database", None)
        return DONE
