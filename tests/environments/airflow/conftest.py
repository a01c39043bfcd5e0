"""What the runtime's unit tests share: the sandbox modes this machine can run."""

from __future__ import annotations

import os

import pytest

from environments.airflow import sandbox


def available_modes() -> list:
    modes = []
    if os.geteuid() == 0:
        modes.append(sandbox.ACCOUNTS)
    bubblewrap = pytest.param(
        sandbox.BUBBLEWRAP,
        marks=pytest.mark.skipif(
            not sandbox._bubblewrap_works(), reason="bubblewrap (bwrap) is not usable here"
        ),
    )
    return [*modes, bubblewrap]


@pytest.fixture(params=available_modes())
def confined_mode(request, monkeypatch) -> str:
    """Each sandbox mode that works here, in turn (the process's choice, overridden)."""
    monkeypatch.setattr(sandbox, "mode", lambda: request.param)
    return request.param
