"""FastAPI dependency aliases: the one place routes get their collaborators from."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from controlplane.security import Gatekeeper
from environments.identity import Placement
from environments.service import EnvironmentService


def _service(request: Request) -> EnvironmentService:
    return request.app.state.service


def _gatekeeper(request: Request) -> Gatekeeper:
    return request.app.state.gatekeeper


def _placement(request: Request) -> Placement:
    return request.app.state.service.placement


ServiceDep = Annotated[EnvironmentService, Depends(_service)]
GateDep = Annotated[Gatekeeper, Depends(_gatekeeper)]
PlacementDep = Annotated[Placement, Depends(_placement)]
