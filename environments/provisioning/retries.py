"""How the reconciler runs one step and how long it keeps trying.

Whatever a step does, running it yields an Outcome: an AWS error it left unhandled is
classified (transient or not), and any other exception (a bug, a full disk, an archive the
code did not foresee) is a retry that counts against the step's budget like any other. So no
exception can leave an environment in a transitional status: once a step's budget is spent,
the environment fails with the last reason in LastUpdate.Error.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from environments.plumbing.repeats import RepeatLimiter
from environments.provisioning.aws_outcomes import outcome_for
from environments.provisioning.step import Outcome, RetryLater, Step, StepContext

log = logging.getLogger(__name__)
_unexpected = RepeatLimiter(log, interval=600.0)

# A delay a step asks for is honoured up to this, so a wrong value cannot park an environment.
MAX_REQUESTED_DELAY_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    # Attempts per step (a step may set its own `max_attempts`). With the capped backoff
    # below, twelve attempts are roughly three minutes of retrying.
    max_attempts: int = 12
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    # Deleting never gives up, since giving up would leak what the environment created (a
    # queue, log groups, an entry in the user's bucket). Past its budget, a teardown step keeps
    # trying at this slow pace while LastUpdate.Error says why it is stuck.
    stuck_delete_pace: float = 300.0

    def budget(self, step: Step | None) -> int:
        return max(1, int(getattr(step, "max_attempts", self.max_attempts)))

    def delay(
        self, attempt: int, asked: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds before attempt `attempt + 1`: what the step asked for, else exponential
        backoff with jitter, capped (attempt counts from 1)."""
        if asked is not None:
            return min(max(asked, 0.0), MAX_REQUESTED_DELAY_SECONDS)
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)


def run_step(call: Callable[[StepContext], Outcome], ctx: StepContext, label: str) -> Outcome:
    """Run `call` (a step's ensure or teardown) and turn every exception into an outcome."""
    try:
        return call(ctx)
    except (ClientError, BotoCoreError) as err:
        return outcome_for(err, label)
    except Exception as err:
        # The traceback matters once; the same failure on every retry adds nothing.
        _unexpected.error(
            (label, type(err).__name__, str(err)),
            "%s of environment %s raised unexpectedly",
            label,
            ctx.name,
            exc_info=True,
        )
        return RetryLater(f"{label}: unexpected {type(err).__name__}: {err}")
