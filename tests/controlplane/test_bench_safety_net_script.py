"""scripts/bench_safety_net.py runs end to end on a few environments (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_safety_net.py"


def test_bench_safety_net_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--environments", "3", "--rounds", "1", "--seconds",
         "0.3", "--clients", "2"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "DAG-sync pass at its default interval vs once an hour" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line[:2] in ("1 ", "2 ")]
    assert [row[0] for row in rows] == ["1", "2"], result.stdout
