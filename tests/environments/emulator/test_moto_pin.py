"""The embedded AWS's saved state is pickled moto objects, so it is tied to one moto release."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from environments.emulator.state import snapshot_file
from tests.conftest import ROOT

ADVICE = (
    "The embedded AWS's snapshot format was written for moto {built}. Before moving to another "
    "moto: check environments/emulator/state/pickling.py against it, run the emulator tests, bump "
    "FORMAT_VERSION, and set BUILT_FOR_MOTO and the pin in pyproject.toml together (then uv lock)."
)


def _pinned_moto() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"moto(\[[\w,]+\])?==([\w.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(2)
    raise AssertionError("pyproject.toml must pin moto exactly (moto[server]==X.Y.Z)")


def test_installed_pinned_and_snapshot_moto_agree() -> None:
    built = snapshot_file.BUILT_FOR_MOTO
    advice = ADVICE.format(built=built)
    assert _pinned_moto() == built, f"pyproject.toml pins moto {_pinned_moto()}. {advice}"
    assert version("moto") == built, f"moto {version('moto')} is installed. {advice}"
