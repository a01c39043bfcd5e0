"""`airdock env logs`: the components' log files of one environment, tailed like `tail -f`.

The runtime writes each component's output to `state/logs/<component>.log` (the
same lines it ships to CloudWatch); this prints their last lines, each prefixed with the
component, and with `follow` keeps printing what is appended, including from components
that start later.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

POLL_SECONDS = 0.5


def _matches(path: Path, component: str | None) -> bool:
    name = path.stem
    if component is None:
        return True
    return name == component or name.startswith(f"{component}-")


def follow_logs(folder: Path, *, component: str | None, lines: int, follow: bool) -> int:
    offsets: dict[Path, int] = {}
    files = sorted(p for p in folder.glob("*.log") if _matches(p, component))
    if not files and not follow:
        print(f"error: no log of a component named {component!r}", file=sys.stderr)
        return 2
    for path in files:
        with open(path, "rb") as handle:
            for line in deque(handle, maxlen=max(lines, 0)):
                _print(path, line)
            offsets[path] = handle.tell()
    sys.stdout.flush()
    try:
        while follow:
            time.sleep(POLL_SECONDS)
            for path in sorted(p for p in folder.glob("*.log") if _matches(p, component)):
                offset = offsets.get(path, 0)
                if path.stat().st_size < offset:
                    offset = 0  # truncated or replaced
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    for line in handle:
                        if not line.endswith(b"\n"):
                            break
                        _print(path, line)
                        offset += len(line)
                offsets[path] = offset
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return 0


def _print(path: Path, line: bytes) -> None:
    text = line.decode(errors="replace").rstrip("\n")
    print(f"{path.stem} | {text}")
