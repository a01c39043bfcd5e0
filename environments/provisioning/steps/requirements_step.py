"""The environment's own virtualenv: its Airflow version from our lock, plus requirements.txt.

The installer's full output goes to a `requirements_install_*` stream in the environment's
log groups. A failed install leaves the previous virtualenv in place, so a failed update
rolls back to a working environment.
"""

from __future__ import annotations

import logging
import socket

from environments.airflow.bytecode import plant_for
from environments.airflow.venv_store import remove_venvs
from environments.airflow.venvs import build_venv
from environments.aws.cwlogs import put_lines
from environments.provisioning.step import DONE, Failed, Outcome, RetryLater, StepContext
from environments.provisioning.steps.files import enabled_log_groups, fetch_artifact

log = logging.getLogger(__name__)


def install_stream() -> str:
    return f"requirements_install_{socket.gethostname()}"


class Requirements:
    name = "requirements"

    def ensure(self, ctx: StepContext) -> Outcome:
        if not ctx.services.airflow_venvs:
            return DONE
        workspace = ctx.services.workspace(ctx.name)
        requirements: bytes | None = None
        if ctx.spec.get("RequirementsS3Path"):
            path = workspace.state / "requirements.txt"
            problem = fetch_artifact(ctx, "Requirements", "requirements", path)
            if problem is not None:
                return problem
            requirements = path.read_bytes()
        result = build_venv(
            workspace.venv,
            ctx.spec["AirflowVersion"],
            requirements,
            cache_dir=ctx.services.uv_cache,
            plugins_dir=workspace.plugins,
            workspace=workspace,
        )
        groups = enabled_log_groups(ctx)
        if not result.skipped:
            logs = ctx.services.aws.client("logs")
            for group in groups:
                put_lines(logs, group, install_stream(), result.output.splitlines())
        if not result.ok and result.error_code in ("AIRFLOW_INSTALL_FAILED", "VENV_BUSY"):
            # Airflow itself comes from our lock: its failure is the index or the host, not
            # the user's spec, so it is worth another try after a backoff.
            return RetryLater(result.error_message or "installing Airflow failed")
        if not result.ok:
            where = (
                f"see log stream {install_stream()} in {', '.join(groups)}"
                if groups
                else "enable a logging module to keep the installer output in CloudWatch"
            )
            return Failed(
                result.error_code or "REQUIREMENTS_INSTALL_FAILED",
                f"{result.error_message} ({where})",
            )
        ctx.resources["venv"] = {"spec_hash": result.spec_hash}
        if result.venv_path is not None:
            planted = plant_for(workspace, result.venv_path, ctx.services.uv_cache)
            log.info("%s: %s", ctx.name, planted)
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        remove_venvs(ctx.services.workspace(ctx.name).venv)
        ctx.resources.pop("venv", None)
        return DONE
