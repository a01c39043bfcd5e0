"""The ordered list of steps that provision an environment (teardown runs it in reverse).

Checks of the user's prerequisites come first, so an environment that MWAA would refuse
fails before anything is created for it. Contents follow MWAA's order: the startup script
runs before requirements are installed (after plugins, which requirements may install
from), and DAGs arrive before Airflow itself starts.
"""

from __future__ import annotations

from environments.provisioning.step import Step
from environments.provisioning.steps.celery_queue import CeleryQueue
from environments.provisioning.steps.check_artifacts import CheckArtifacts
from environments.provisioning.steps.check_bucket import CheckSourceBucket
from environments.provisioning.steps.check_kms import CheckKmsKey
from environments.provisioning.steps.check_network import CheckNetwork
from environments.provisioning.steps.check_role import CheckExecutionRole
from environments.provisioning.steps.check_spec import CheckSpec
from environments.provisioning.steps.dag_events import DagEvents
from environments.provisioning.steps.dags_step import SyncDags
from environments.provisioning.steps.endpoints import AssignEndpoints
from environments.provisioning.steps.log_groups import LogGroups
from environments.provisioning.steps.metadata_db import MetadataDatabase
from environments.provisioning.steps.plugins_step import Plugins
from environments.provisioning.steps.requirements_step import Requirements
from environments.provisioning.steps.runtime_step import AirflowProcesses
from environments.provisioning.steps.startup_step import StartupScript
from environments.provisioning.steps.workspace_step import PrepareWorkspace


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
        MetadataDatabase(),
        StartupScript(),
        Plugins(),
        Requirements(),
        SyncDags(),
        DagEvents(),
        AssignEndpoints(),
        AirflowProcesses(),
    ]
