"""Pid files that survive a killed control plane, and the clean-up that uses them.

Each component runs as the leader of its own process group. Its pid file records the pid and
the process's start time (from /proc), so a later control plane can tell the component it
started from an unrelated process that reused the pid. After a crash the new control plane
stops every recorded group that is still the same process and starts a fresh set: never two
sets at once, and nothing left over.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from environments.plumbing.files import atomic_write
from environments.plumbing.processes import signal_group

SUFFIX = ".pid"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such
    process (or it is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def record(folder: Path, name: str, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"pid": pid, "start_time": start_time(pid)}
    atomic_write(folder / f"{name}{SUFFIX}", json.dumps(entry).encode(), mode=0o644)


def forget(folder: Path, name: str) -> None:
    (folder / f"{name}{SUFFIX}").unlink(missing_ok=True)


def live_groups(folder: Path) -> dict[str, int]:
    """Recorded components whose process still runs: name -> pid (its group id)."""
    found: dict[str, int] = {}
    if not folder.is_dir():
        return found
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            entry = json.loads(path.read_text())
            pid, started = int(entry["pid"]), entry["start_time"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if started is not None and start_time(pid) == started:
            found[path.name[: -len(SUFFIX)]] = pid
    return found


def stop_recorded(folder: Path, grace: float = 10.0) -> list[str]:
    """Stop every recorded process group still running (SIGTERM, then SIGKILL after `grace`)
    and remove the pid files. Returns the names that were running."""
    groups = live_groups(folder)
    for pid in groups.values():
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(p) for p in groups.values()):
        time.sleep(0.1)
    for pid in groups.values():
        signal_group(pid, signal.SIGKILL)
    if folder.is_dir():
        for path in folder.glob(f"*{SUFFIX}"):
            path.unlink(missing_ok=True)
    return sorted(groups)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap it if it was our own child
    return start_time(pgid) is not None or _has_members(pgid)


def _has_members(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    return True
    return False
