"""Run the startup script (at its object version) for each component, before anything else.

Exports survive per component in `state/startup-env.json` for the runtime; output goes to the
logs; a non-zero exit or a timeout fails the create or update.
"""

from __future__ import annotations

import logging

from environments.aws.cwlogs import put_lines
from environments.contents.startup import mwaa_variables, run_startup_script
from environments.provisioning.step import DONE, Failed, Outcome, StepContext
from environments.provisioning.steps.files import enabled_log_groups, fetch_artifact

log = logging.getLogger(__name__)


def components(ctx: StepContext) -> list[str]:
    if ctx.spec.get("EnvironmentClass") == "mw1.micro":
        return ["hybrid", "webserver"]
    return ["scheduler", "worker", "webserver"]


class StartupScript:
    name = "startup-script"

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout

    def ensure(self, ctx: StepContext) -> Outcome:
        workspace = ctx.services.workspace(ctx.name)
        if not ctx.spec.get("StartupScriptS3Path"):
            workspace.write_json("startup-env.json", {})
            return DONE
        script = workspace.state / "startup.sh"
        problem = fetch_artifact(ctx, "StartupScript", "startup script", script)
        if problem is not None:
            return problem
        exported: dict[str, dict[str, str]] = {}
        for component in components(ctx):
            variables = mwaa_variables(
                component=component,
                env_name=ctx.name,
                env_id=ctx.env_id,
                airflow_home=workspace.home,
                airflow_version=ctx.spec["AirflowVersion"],
                region=ctx.placement.region,
                account_id=ctx.placement.account_id,
            )
            run = run_startup_script(
                script, variables, cwd=workspace.home, timeout=self.timeout, workspace=workspace
            )
            stream = f"startup_script_execution_{component}"
            self._log(ctx, stream, run.log_lines())
            if not run.ok:
                return Failed(
                    "STARTUP_SCRIPT_FAILED",
                    f"The startup script {ctx.spec['StartupScriptS3Path']} "
                    f"{run.failure(self.timeout)} on the {component}; see log stream {stream} "
                    "in the environment's log groups.",
                )
            exported[component] = run.exported
        workspace.write_json("startup-env.json", exported)
        return DONE

    @staticmethod
    def _log(ctx: StepContext, stream: str, lines: list[str]) -> None:
        logs = ctx.services.aws.client("logs")
        for group in enabled_log_groups(ctx):
            put_lines(logs, group, stream, lines or ["(no output)"])

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
