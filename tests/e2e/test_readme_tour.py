"""The README's tour, run as a reader would paste it, against a live server.

The README marks the blocks of the tour in their info string: ```` ```bash tour ```` and
```` ```python tour ```` run, in order, in one shell (so variables carry from block to block);
```` ```bash tour-server ```` is the server, which this test starts itself. The shell starts in
a stand-in for the checkout: `.venv` links to the real one and `.airdock` is the test server's
data dir, so the tour's `$PWD/...` paths hold and nothing is written to the checkout.

Each block's time is written to $AIRDOCK_TEST_OUTPUT/readme-tour.txt.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, start_server

# A whole README against a real Airflow: creates take minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

BLOCK = re.compile(r"^```(bash|python) tour\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARK = "README-TOUR-BLOCK"
OUTPUT = Path(os.environ.get("AIRDOCK_TEST_OUTPUT", ROOT / "test-output"))


def tour_blocks(readme: str) -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(readme)]


def tour_script(blocks: list[tuple[str, str]]) -> str:
    """One bash script: each block behind a timestamped marker, python blocks as heredocs."""
    parts = ["set -e -o pipefail"]
    for number, (kind, body) in enumerate(blocks, 1):
        parts.append(f'echo "{MARK} {number} $(date +%s.%N)" >&2')
        if kind == "python":
            parts.append(f"python - <<'PYTHON_BLOCK'\n{body}PYTHON_BLOCK")
        else:
            parts.append(body)
    parts.append(f'echo "{MARK} end $(date +%s.%N)" >&2')
    return "\n".join(parts) + "\n"


def test_the_tour_blocks_are_found():
    blocks = tour_blocks((ROOT / "README.md").read_text())
    kinds = [kind for kind, _ in blocks]
    assert len(blocks) >= 4 and "python" in kinds, kinds
    assert "export PATH=$PWD/.venv/bin:$PATH" in blocks[0][1]  # stated once, first
    assert any("airdock env wait" in body for _, body in blocks)


def test_the_readme_tour_runs_as_pasted(tmp_path: Path):
    blocks = tour_blocks((ROOT / "README.md").read_text())
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    # Default settings, as `./scripts/up` serves: Airflow virtualenvs are built.
    server = start_server(checkout / ".airdock", airflow=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRDOCK_"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # no .venv: the tour puts it there itself
    started = time.time()
    try:
        ran = subprocess.run(
            ["bash", "-c", tour_script(blocks)],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    finally:
        server.stop()
    waited = re.findall(r"^demo: \S+ after [\d.]+ s$", ran.stdout, re.MULTILINE)
    _write_timings(blocks, ran.stderr, time.time() - started, waited)
    assert ran.returncode == 0, f"stdout:\n{ran.stdout}\nstderr:\n{ran.stderr}"
    out = ran.stdout
    assert "AVAILABLE" in out and "hello.py" in out
    assert "airflow-demo-Scheduler" in out
    assert "demo: AVAILABLE after" in out  # airdock env wait
    assert not list(checkout.glob("hello.py")) and not (ROOT / "hello.py").exists()


def _write_timings(
    blocks: list[tuple[str, str]], stderr: str, total: float, waited: list[str]
) -> None:
    marks = re.findall(rf"^{MARK} (\S+) (\S+)$", stderr, re.MULTILINE)
    times = [float(stamp) for _, stamp in marks]
    lines = [f"README tour: {len(blocks)} blocks, {total:.1f} s in all (server start excluded)"]
    for (label, _), start, end in zip(marks, times, times[1:], strict=False):
        kind, body = blocks[int(label) - 1]
        first = body.strip().splitlines()[0][:70]
        lines.append(f"  block {label} ({kind}): {end - start:6.1f} s  {first}")
    lines += [f"  airdock env wait: {line}" for line in waited]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "readme-tour.txt").write_text("\n".join(lines) + "\n")
