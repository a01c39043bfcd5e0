"""The environment's folder on this host; removing it is the last thing deletion does."""

from __future__ import annotations

from environments.airflow import sandbox
from environments.provisioning.step import DONE, Outcome, StepContext


class PrepareWorkspace:
    name = "workspace"

    def ensure(self, ctx: StepContext) -> Outcome:
        workspace = ctx.services.workspace(ctx.name)
        workspace.create()
        sandbox.prepare(workspace)  # the environment's account, and who may touch what
        ctx.resources["workspace"] = str(workspace.root)
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        workspace = ctx.services.workspace(ctx.name)
        workspace.remove()
        sandbox.release(workspace)
        ctx.resources.pop("workspace", None)
        return DONE
