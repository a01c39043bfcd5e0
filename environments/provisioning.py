"""The ordered list of steps that provision an environment (teardown runs it in reverse)."""

from __future__ import annotations

from environments.steps.base import Step
from environments.steps.check_spec import CheckSpec
from environments.steps.endpoints import AssignEndpoints


def default_steps() -> list[Step]:
    return [CheckSpec(), AssignEndpoints()]
