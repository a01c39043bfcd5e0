"""The environment's folder on this host; removing it is the last thing deletion does."""

from __future__ import annotations

from environments.provisioning.step import DONE, Outcome, StepContext


class PrepareWorkspace:
    name = "workspace"

    def ensure(self, ctx: StepContext) -> Outcome:
        workspace = ctx.services.workspace(ctx.name)
        workspace.create()
        ctx.resources["workspace"] = str(workspace.root)
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        ctx.services.workspace(ctx.name).remove()
        ctx.resources.pop("workspace", None)
        return DONE
