"""Re-check the stored spec against the current rules before provisioning anything.

Rules can tighten between releases (a version leaves support, a class limit changes); an
environment recorded under older rules then fails with a clear message instead of half-way.
"""

from __future__ import annotations

from environments.errors import ValidationException
from environments.provisioning.step import DONE, Failed, Outcome, StepContext
from environments.spec import check_rules


class CheckSpec:
    name = "check-spec"

    def ensure(self, ctx: StepContext) -> Outcome:
        try:
            check_rules(ctx.spec)
        except ValidationException as err:
            return Failed("INCORRECT_CONFIGURATION", err.message)
        return DONE

    def teardown(self, ctx: StepContext) -> Outcome:
        return DONE
