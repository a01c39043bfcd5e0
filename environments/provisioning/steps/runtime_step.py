"""Run the environment's Airflow and wait until every component is healthy.

Last in the plan: it needs the queue, the workspace, the startup exports, the plugins, the
virtualenv and the DAGs. The database is created and migrated first (again only when the
Airflow version changes). A create whose processes never become healthy fails and stops them.
An update that needs new processes rolls over to them (environments.airflow.runtime.rollout):
if they do not come up, the previous ones never stopped serving, and the reconciler's rollback
runs this step again with the previous spec, which then changes nothing.
"""

from __future__ import annotations

from environments.airflow.venv_store import current_venv
from environments.provisioning.step import DONE, Failed, Outcome, RetryLater, StepContext

HEALTHY_WITHIN_SECONDS = 600.0  # a busy 2-core machine takes minutes
AIRFLOW_DATABASE_FAILED = "AIRFLOW_DATABASE_FAILED"
AIRFLOW_UNHEALTHY = "AIRFLOW_UNHEALTHY"


class AirflowProcesses:
    name = "airflow-runtime"

    def ensure(self, ctx: StepContext) -> Outcome:
        runtime = ctx.services.airflow_runtime
        if runtime is None or not ctx.services.airflow_venvs:
            return DONE
        venv = current_venv(ctx.services.workspace(ctx.name).venv)
        if venv is None:
            return Failed(AIRFLOW_UNHEALTHY, "The environment has no Airflow virtualenv.")
        plan = runtime.plan_for(
            name=ctx.name,
            env_id=ctx.env_id,
            spec=ctx.spec,
            resources=ctx.resources,
            region=ctx.placement.region,
            account_id=ctx.placement.account_id,
            venv=venv,
        )
        problem = runtime.prepare_database(plan)
        if problem is not None:
            return Failed(AIRFLOW_DATABASE_FAILED, problem)
        applied = runtime.run(plan)
        if not applied.started:
            return RetryLater("the Airflow runtime is stopping")
        if applied.error is not None:
            return Failed(AIRFLOW_UNHEALTHY, applied.error)
        health = runtime.wait_healthy(ctx.name, HEALTHY_WITHIN_SECONDS)
        if health.healthy:
            return DONE
        if runtime.stopping:  # a shutdown, not a verdict: the next start carries on
            return RetryLater("the Airflow runtime is stopping")
        if ctx.applied_spec is None:  # a create: nothing to keep running
            runtime.halt(ctx.name)
        return Failed(
            AIRFLOW_UNHEALTHY,
            f"Airflow did not become healthy within {HEALTHY_WITHIN_SECONDS:.0f} s: "
            f"{health.reason}",
        )

    def teardown(self, ctx: StepContext) -> Outcome:
        runtime = ctx.services.airflow_runtime
        if runtime is not None:
            runtime.remove(ctx.name)
        return DONE
