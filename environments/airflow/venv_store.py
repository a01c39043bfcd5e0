"""Where an environment's virtualenvs live on disk, and how one goes live.

Layout, for a target such as `<workspace>/venv`:

    <workspace>/venv                      symlink -> .venv.d/<airflow>-<spec hash>
    <workspace>/.venv.d/<airflow>-<hash>/ one complete virtualenv per spec ever built (2 kept)
    <workspace>/.venv.d/logs/install-*.log full installer output of the last attempts

Why a symlink swap rather than building in a temp dir and renaming: a virtualenv is not
relocatable (scripts carry absolute shebangs, pyvenv.cfg and .pth files absolute paths). uv can
make relocatable venvs, but swapping two directories takes two renames with a moment in between
where `venv` is missing, and a rename under a running Airflow would pull its files away. Here each
venv is built at the path it will always live at; going live is one atomic `rename(2)` of a
symlink, so `venv/bin/python` always names a complete environment, the previous one stays intact
(and on disk) when a build fails, and processes started from the resolved path keep their files
until the venv after next replaces them.

A venv counts as complete once its MARKER is written, the last step of a build.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from environments.plumbing.files import atomic_write

MARKER = ".airdock/venv.json"
KEEP_LOGS = 10

Say = Callable[[str], None]


def store_dir(target: Path) -> Path:
    return target.parent / f".{target.name}.d"


def current_venv(target: Path) -> Path | None:
    """The real directory `target` points at, if it is a complete Airdock venv."""
    try:
        real = target.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return None
    return real if is_complete(real) else None


def read_marker(venv: Path) -> dict:
    """What the build recorded about `venv` (empty if it has no readable marker)."""
    try:
        found = json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def is_complete(venv: Path) -> bool:
    """Built to the end, and still where it was built (a moved venv has stale absolute paths)."""
    try:
        return json.loads((venv / MARKER).read_text()).get("path") == str(venv.resolve())
    except (OSError, ValueError):
        return False


def mark_complete(venv: Path, **facts: str) -> None:
    record = {"path": str(venv.resolve()), **facts, "built_at": datetime.now(UTC).isoformat()}
    # Readable like the rest of the venv, which the environment's processes use.
    atomic_write(venv / MARKER, json.dumps(record, indent=2), mode=0o644)


def remove_venvs(target: Path) -> None:
    """Teardown: the symlink and every venv built for it."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    shutil.rmtree(store_dir(target), ignore_errors=True)


def switch(target: Path, venv: Path, say: Say) -> None:
    """Point `target` at `venv` in one atomic rename."""
    if target.exists() and not target.is_symlink():
        # A plain directory from before this layout: moved aside (it has no marker, so the
        # prune after the swap removes it).
        legacy = store_dir(target) / f"legacy-{int(time.time())}"
        say(f"moving the existing {target} to {legacy}")
        target.rename(legacy)
    link = target.with_name(f".{target.name}.swap-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(venv, target.parent))
    os.replace(link, target)


def prune(target: Path, keep: set[Path | None], say: Say) -> None:
    """Remove every venv of `target` but those in `keep`."""
    for entry in store_dir(target).iterdir():
        if entry.name == "logs" or entry.name.startswith(".") or not entry.is_dir():
            continue
        if entry.resolve() not in keep:
            say(f"removing old venv {entry.name}")
            shutil.rmtree(entry, ignore_errors=True)


def new_log(target: Path) -> Path:
    """A fresh installer log for the next build of `target`; only the last few are kept."""
    logs = store_dir(target) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in sorted(logs.glob("install-*.log"))[: -(KEEP_LOGS - 1)]:
        old.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return logs / f"install-{stamp}.log"
