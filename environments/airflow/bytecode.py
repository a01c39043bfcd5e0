"""Compiled bytecode for an Airflow lock, made once and handed to each environment built on it.

An environment's Pythons keep their bytecode in its home (PYTHONPYCACHEPREFIX): its venv is
not theirs to write. So a new environment started with none, and its six or so Airflow
processes, started together, each compiled the same thousands of modules from source: about
5 s of CPU apiece, most of a create on two cores.

The seed is that bytecode, made by Airdock once per lock and interpreter, and unpacked into a
new environment's bytecode folder before anything of it runs. Trust follows the templates' rule
(environments.airflow.runtime.templates): the seed is compiled right after the lock is installed
and before any requirements.txt package is, by an interpreter that runs no site hook (`-S`), and
compiling parses, never executes. Its files are checked-hash pycs: Python hashes the source
before using one, so a module that requirements.txt replaced is compiled afresh, never run from
a stale seed.

Unpacking happens as the environment (sandbox.confine), from a tar on stdin: the bytecode
folder is the environment's own to shape, and Airdock never writes into it as itself.

Layout, next to the shared uv cache (`<cache>/../bytecode/<key>/`):

    seed.json          {"stdlib": "<the interpreter's stdlib folder>"}
    site-packages.tar  pycs of the venv's site-packages, relative to it
    stdlib.tar         pycs of the standard library, relative to it
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from environments.airflow import sandbox
from environments.airflow.venv_store import read_marker
from environments.plumbing import processes as procs
from environments.workspace import Workspace

# Bump when the way a seed is made changes, so that seeds are made again.
RECIPE = "airdock-bytecode-1"
COMPILE_TIMEOUT = 300.0
CONFINED_TIMEOUT = 120.0
# Parts of the standard library that no Airflow process imports.
_STDLIB_SKIPPED = ("site-packages", "test", "idlelib", "turtledemo", "tkinter", "lib2to3")
_PARTS = ("site-packages", "stdlib")


def seeds_root(cache_dir: Path) -> Path:
    return Path(cache_dir).absolute().parent / "bytecode"


def seed_key(airflow_version: str, lock_bytes: bytes, interpreter: dict[str, str]) -> str:
    digest = hashlib.sha256(RECIPE.encode() + b"\0" + lock_bytes)
    for part in (interpreter["full"], interpreter["base"]):
        digest.update(b"\0" + part.encode())
    return f"{airflow_version}-{digest.hexdigest()[:16]}"


def site_packages(venv: Path) -> Path | None:
    found = sorted(Path(venv).resolve().glob("lib/python*/site-packages"))
    return found[0] if len(found) == 1 else None


def make_seed(venv: Path, root: Path, key: str) -> str:
    """Compile the venv's site-packages and its interpreter's standard library into the seed
    `root/key`, unless it exists. Call it while the venv holds nothing but the lock. Returns a
    line for the install log; a seed that cannot be made costs speed, not correctness."""
    seed = root / key
    if (seed / "seed.json").is_file():
        return f"bytecode seed {key} is ready"
    site = site_packages(venv)
    if site is None:
        return "no bytecode seed: the venv's site-packages folder was not found"
    python = str(Path(venv) / "bin" / "python")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    _sweep_abandoned(root)
    # The work folder names its maker, so a later build can tell a killed one's from a live one's.
    work = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", dir=root))
    try:
        stdlib = Path(_stdlib_of(python))
        compiled = work / "compiled"
        skipped = re.escape(str(stdlib)) + "/(" + "|".join(_STDLIB_SKIPPED) + ")/"
        # -I -S: no environment variable, user site or .pth file of the venv steers this run.
        command = [python, "-I", "-S", "-X", f"pycache_prefix={compiled}", "-m", "compileall",
                   "-q", "-j", "0", "--invalidation-mode", "checked-hash", "-x", skipped,
                   str(site), str(stdlib)]  # fmt: skip
        # compileall exits 1 when some file does not compile (a py2-only test module, say):
        # what did compile is still good.
        procs.run(
            command, timeout=COMPILE_TIMEOUT, env={"PATH": "/usr/bin:/bin"}, cwd=work,
            dies_with_caller=True,
        )  # fmt: skip
        staged = work / "seed"
        staged.mkdir(mode=0o700)
        for name, folder in (("site-packages", site), ("stdlib", stdlib)):
            _pack(compiled / folder.relative_to("/"), staged / f"{name}.tar")
        (staged / "seed.json").write_text(json.dumps({"stdlib": str(stdlib)}))
        (staged / "seed.json").chmod(0o600)
        with contextlib.suppress(OSError):  # another build made it first: theirs is as good
            staged.rename(seed)
        return f"bytecode seed {key} made"
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return f"no bytecode seed: {error}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plant_for(workspace: Workspace, venv: Path, cache_dir: Path) -> str:
    """Plant the seed that `venv`'s build recorded (see `plant`), and drop the bytecode of the
    venvs that its store no longer holds."""
    forgotten = forget_removed_venvs(workspace, Path(venv).resolve().parent)
    key = read_marker(venv).get("bytecode")
    if not isinstance(key, str) or not key:
        return f"no bytecode seed recorded for this venv{forgotten}"
    return plant(workspace, venv, seeds_root(cache_dir), key) + forgotten


def plant(workspace: Workspace, venv: Path, root: Path, key: str) -> str:
    """Unpack seed `root/key` into the environment's bytecode folder for `venv`, as the
    environment; a part that is already there is left alone. Returns a line for the log."""
    seed = root / key
    try:
        stdlib = Path(json.loads((seed / "seed.json").read_text())["stdlib"])
    except (OSError, ValueError, KeyError):
        return f"no bytecode seed {key} to plant"
    site = site_packages(venv)
    if site is None:
        return "no bytecode planted: the venv's site-packages folder was not found"
    prefix = workspace.bytecode
    planted = []
    for name, folder in (("site-packages", site), ("stdlib", stdlib)):
        target = prefix / folder.relative_to("/")
        if target.is_dir():
            continue
        try:
            _unpack_as_environment(workspace, seed / f"{name}.tar", target)
        except OSError as error:
            return f"bytecode not planted: {error}"
        planted.append(name)
    return f"bytecode planted: {', '.join(planted) or 'all there already'}"


def forget_removed_venvs(workspace: Workspace, store: Path) -> str:
    """Remove, as the environment, the bytecode kept for venvs of `store` (a venv store folder)
    that are gone: each venv's is about 100 MB. Returns a clause for the log line."""
    folder = workspace.bytecode / store.relative_to("/")
    try:
        kept = {entry.name for entry in store.iterdir()}
        stale = [entry for entry in folder.iterdir() if entry.name not in kept]
    except OSError:
        return ""
    if not stale:
        return ""
    argv = ["/bin/rm", "-rf", "--", *map(str, stale)]
    launch = sandbox.confine(workspace, argv, {"PATH": "/usr/bin:/bin"}, workspace.home)
    result = procs.run(
        launch.argv, timeout=CONFINED_TIMEOUT, env=launch.env, cwd=launch.cwd,
        identity=launch.identity(),
    )  # fmt: skip
    names = ", ".join(sorted(entry.name for entry in stale))
    return f"; bytecode of {names} removed" if result.ok else f"; removing {names} failed"


# --- internals ---------------------------------------------------------------------------


def _sweep_abandoned(root: Path) -> None:
    """Remove the work folders (`.<key>.<pid>.*`, a few hundred MB of pycs each) of seed builds
    whose process is gone: killed mid-compile, they were never cleaned up. A folder whose maker
    still runs, or whose name names none, is left alone."""
    for entry in root.glob(".*.*.*"):
        maker = entry.name.split(".")[-2]
        if maker.isdigit() and not procs.is_running(int(maker)):
            shutil.rmtree(entry, ignore_errors=True)


def _stdlib_of(python: str) -> str:
    probe = "import sysconfig; print(sysconfig.get_path('stdlib'))"
    done = subprocess.run(
        [python, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


def _pack(folder: Path, archive: Path) -> None:
    """Every pyc under `folder`, by its path relative to it (an empty tar if none)."""
    with tarfile.open(archive, "w") as tar:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.pyc")):
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    archive.chmod(0o600)


def _unpack_as_environment(workspace: Workspace, archive: Path, target: Path) -> None:
    # Into a fresh folder beside the target, renamed into place once complete: an unpacking
    # that dies half-way leaves no partial target that a later `plant` would take as done.
    # One killed outright leaves its folder, which the next plant of the target removes (an
    # environment's plants run one at a time, in its reconcile).
    script = (
        'rm -rf -- "$1".part.* && '
        'mkdir -p -- "$(dirname -- "$1")" && part=$(mktemp -d -- "$1.part.XXXXXX") && '
        '{ tar -x -f - -C "$part" --no-same-owner --no-same-permissions && mv -T -- "$part" "$1"'
        ' || { rm -rf -- "$part"; exit 1; }; }'
    )
    argv = ["/bin/sh", "-c", script, "plant-bytecode", str(target)]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    launch = sandbox.confine(workspace, argv, env, workspace.home)
    with open(archive, "rb") as stream:
        result = procs.run(
            launch.argv, timeout=CONFINED_TIMEOUT, env=launch.env, cwd=launch.cwd,
            identity=launch.identity(), stdin=stream,
        )  # fmt: skip
    if not result.ok:
        raise OSError(f"unpacking {archive.name} failed: {result.output.strip()[-300:]}")
