"""FastAPI dependencies: how an MWAA route gets a request it may serve.

A route declares `call: Annotated[Call, reads(intent)]` (or `writes(intent)`, or
`acts_in_airflow(action)`) and receives its `Call` only after these steps, in this order: read
the raw body, authenticate the SigV4 signature over that body and the raw path, build the
route's Intent, authorize it. A refused request never reaches the service.

The providers are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread
pool, which costs more than the work itself on the read path. Reads authorize inline on the
event loop (their store reads never wait on a lock). Writes authorize in the thread pool; their
routes are plain `def` functions, which FastAPI runs there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from controlplane.security import Gatekeeper, Intent
from controlplane.wire import parse_json_object, read_body
from environments.service import EnvironmentService, Requester

UNREAD = object()  # Call.seen_tags before (or without) a read of the target's tags


@dataclass(eq=False)
class Call:
    """One authenticated MWAA request, as its Intent and its route see it."""

    request: Request
    service: EnvironmentService
    requester: Requester
    body: bytes
    # The target's row when authorization already read it (for aws:ResourceTag), so the
    # service answers from that read instead of making a second one.
    target_row: Any = field(default=None, init=False)
    # The tags the decision used (None: no such environment then); UNREAD when no policy asked.
    seen_tags: Any = field(default=UNREAD, init=False)
    # Decides again for other tags: set for writes whose decision read the target's tags.
    reauthorize: Callable[[dict[str, str] | None], None] | None = field(default=None, init=False)

    def tag_guard(self) -> Callable[[dict[str, str] | None], None] | None:
        """For a write whose authorization read the target's tags: a check the service runs
        on the row it is about to change, inside its compare-and-set. If the tags are no longer
        those the decision saw (another request created or retagged the environment since),
        authorization is decided again for the tags the write would act on, so a check made
        before a concurrent write can never authorize this one."""
        if self.seen_tags is UNREAD or self.reauthorize is None:
            return None
        seen, decide = self.seen_tags, self.reauthorize

        def guard(current: dict[str, str] | None) -> None:
            if current != seen:
                decide(current)

        return guard

    @functools.cached_property
    def params(self) -> dict[str, Any]:
        """The JSON body, parsed on first use: an operation whose input has no body members
        (DeleteEnvironment, CreateCliToken, ...) never refuses what a client sends there."""
        return parse_json_object(self.body)

    @property
    def path(self) -> dict[str, Any]:
        return self.request.path_params


@dataclass(eq=False)
class AirflowCall(Call):
    """A call into an environment's Airflow, with the Airflow role the requester acts as."""

    airflow_role: str  # the most capable role its policies allow


IntentOf = Callable[[Call], Intent]


def read_call(request: Request, intent: IntentOf) -> Call:
    """A read's Call: no body, authenticated and authorized inline (on the event loop)."""
    gate: Gatekeeper = request.app.state.gatekeeper
    requester = gate.authenticate(request, b"")
    call = Call(request, request.app.state.service, requester, b"")
    gate.authorize(request, requester, intent(call))
    return call


def reads(intent: IntentOf) -> Any:
    """Depends() for a read (`read_call`)."""

    async def provide(request: Request) -> Call:
        return read_call(request, intent)

    return Depends(provide)


def writes(intent: IntentOf) -> Any:
    """Depends() for a write: the body is read and signed, authorized in the thread pool."""

    async def provide(request: Request) -> Call:
        gate: Gatekeeper = request.app.state.gatekeeper
        body = await read_body(request)
        requester = gate.authenticate(request, body)
        call = Call(request, request.app.state.service, requester, body)
        wanted = intent(call)
        await run_in_threadpool(gate.authorize, request, requester, wanted)
        if wanted.resource_tags is not None:

            def reauthorize(tags: dict[str, str] | None) -> None:
                again = replace(wanted, resource_tags=lambda: tags)
                gate.authorize(request, requester, again)

            call.reauthorize = reauthorize
        return call

    return Depends(provide)


def acts_in_airflow(action: str) -> Any:
    """Depends() for an operation inside the environment's Airflow (web login, REST API): the
    requester needs `action` on one of the environment's Airflow roles."""

    async def provide(request: Request) -> AirflowCall:
        gate: Gatekeeper = request.app.state.gatekeeper
        body = await read_body(request)
        requester = gate.authenticate(request, body)
        name = request.path_params["name"]
        role = await run_in_threadpool(gate.airflow_role, request, requester, name, action)
        return AirflowCall(request, request.app.state.service, requester, body, role)

    return Depends(provide)
