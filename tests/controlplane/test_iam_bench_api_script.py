"""scripts/bench_api.py runs end to end, auth on vs off and the peer included (no timing
assertions). The peer, MiniStack, comes from PyPI: where it cannot be installed the script says
so and goes on, and either outcome is a finished run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_api.py"


def test_bench_api_script_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rounds",
            "1",
            "--seconds",
            "0.2",
            "--environments",
            "3",
            "--clients",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "vs baseline" in result.stdout
    assert "auth on (default) vs `serve --auth off`" in result.stdout
    assert "get_environment, team user (ABAC)" in result.stdout
    assert "vs MiniStack" in result.stdout or "Peer comparison skipped: " in result.stdout
    if "vs MiniStack" in result.stdout:
        # What each side's server spent per call, and the most these clients allow.
        assert "Airdock server CPU ms/call" in result.stdout
        assert "ratio ceiling" in result.stdout
