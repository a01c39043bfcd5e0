"""The ordered list of steps that provision an environment (teardown runs it in reverse).

Checks of the user's prerequisites come first, so an environment that MWAA would refuse
fails before anything is created for it.
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
from environments.steps.endpoints import AssignEndpoints
from environments.steps.log_groups import LogGroups


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
        AssignEndpoints(),
    ]
