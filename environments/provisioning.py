"""The ordered list of steps that provision an environment (teardown runs it in reverse).

Checks of the user's prerequisites come first, so an environment that MWAA would refuse
fails before anything is created for it. Contents follow MWAA's order: the startup script
runs before requirements are installed (after plugins, which requirements may install
from), and DAGs arrive last.
"""

from __future__ import annotations

from environments.steps.base import Step
from environments.steps.celery_queue import CeleryQueue
from environments.steps.check_artifacts import CheckArtifacts
from environments.steps.check_bucket import CheckSourceBucket
from environments.steps.check_kms import CheckKmsKey
from environments.steps.check_network import CheckNetwork
from environments.steps.check_role import CheckExecutionRole
from environments.steps.check_spec import CheckSpec
from environments.steps.dag_events import DagEvents
from environments.steps.dags_step import SyncDags
from environments.steps.endpoints import AssignEndpoints
from environments.steps.log_groups import LogGroups
from environments.steps.plugins_step import Plugins
from environments.steps.requirements_step import Requirements
from environments.steps.startup_step import StartupScript
from environments.steps.workspace_step import PrepareWorkspace


def default_steps() -> list[Step]:
    return [
        CheckSpec(),
        CheckSourceBucket(),
        CheckExecutionRole(),
        CheckNetwork(),
        CheckKmsKey(),
        CheckArtifacts(),
        LogGroups(),
        CeleryQueue(),
        PrepareWorkspace(),
        StartupScript(),
        Plugins(),
        Requirements(),
        SyncDags(),
        DagEvents(),
        AssignEndpoints(),
    ]
