"""FastAPI dependency aliases: the one place routes get their collaborators from.

The providers are `async def` on purpose: FastAPI runs plain `def` dependencies in the
thread pool, which costs more than the lookups themselves on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from controlplane.security import Gatekeeper
from environments.naming import Placement
from environments.service import EnvironmentService


async def _service(request: Request) -> EnvironmentService:
    return request.app.state.service


async def _gatekeeper(request: Request) -> Gatekeeper:
    return request.app.state.gatekeeper


async def _placement(request: Request) -> Placement:
    return request.app.state.service.placement


ServiceDep = Annotated[EnvironmentService, Depends(_service)]
GateDep = Annotated[Gatekeeper, Depends(_gatekeeper)]
PlacementDep = Annotated[Placement, Depends(_placement)]
