"""Extract plugins.zip (at its object version) safely into the workspace's plugins/ folder."""

from __future__ import annotations

import shutil

from environments.contents.archives import UnsafeArchive, extract_zip
from environments.provisioning.step import DONE, Failed, Outcome, StepContext
from environments.provisioning.steps.files import artifact_identity, fetch_artifact


class Plugins:
    name = "plugins"

    def ensure(self, ctx: StepContext) -> Outcome:
        workspace = ctx.services.workspace(ctx.name)
        identity = artifact_identity(ctx, "Plugins")
        if workspace.read_json("plugins.json", {}).get("identity") == identity and (
            identity is None or workspace.plugins.exists()
        ):
            return DONE  # the same archive version is already in place
        if identity is None:
            shutil.rmtree(workspace.plugins, ignore_errors=True)
            workspace.plugins.mkdir(parents=True, exist_ok=True)
        else:
            archive = workspace.state / "plugins.zip"
            problem = fetch_artifact(ctx, "Plugins", "plugins", archive)
            if problem is not None:
                return problem
            try:
                files = extract_zip(archive, workspace.plugins)
            except UnsafeArchive as err:
                return Failed(
                    "INCORRECT_CONFIGURATION",
                    f"The plugins file {ctx.spec['PluginsS3Path']} was refused: {err}.",
                )
            finally:
                archive.unlink(missing_ok=True)
            ctx.resources["plugins"] = {"files": len(files)}
        workspace.write_json("plugins.json", {"identity": identity})
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
