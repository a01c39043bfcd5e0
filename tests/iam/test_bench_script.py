"""The benchmark script runs end to end (no timing assertions: those do not belong in tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_iam.py"


def test_bench_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--seconds", "0.02"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "vs naive" in result.stdout, result.stdout
    assert "authorize()" in result.stdout
