"""scripts/bench_memory.py runs end to end and names every process of the tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_memory.py"


def test_bench_memory_script_runs() -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), "--workers", "1", "--environments", "2"),
            *("--calls", "5", "--settle", "0.2"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for process in (
        "supervisor",
        "embedded_aws",
        "background",
        "web_doors",
        "api-1",
        "TOTAL (5 processes)",
    ):
        assert process in result.stdout, result.stdout
