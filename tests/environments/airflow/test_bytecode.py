"""Bytecode seeds (environments.airflow.bytecode), on a small real venv: an environment imports
its lock's modules from the seed without compiling them, never runs a seeded pyc whose source
changed, and neither making nor planting a seed can be steered by what is in the venv or in the
environment's own bytecode folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from environments.airflow import bytecode, sandbox
from environments.airflow.venv_store import store_dir
from environments.airflow.venvs import find_uv
from environments.plumbing import processes
from environments.workspace import Workspace
from tests.waiting import wait_until

MODULE = "seeded_module"
# Two bodies of the same size, so that only the content tells them apart.
LOCKED, CHANGED = "VALUE = 'from the lock'\n", "VALUE = 'from the user'\n"
CHECKED_HASH = 0b11  # PEP 552: hash-based, checked against the source


def new_venv(path: Path) -> Path:
    """A venv whose site-packages holds one module of 'the lock'."""
    subprocess.run([find_uv(), "venv", "-q", "--python", sys.executable, str(path)], check=True)
    (bytecode.site_packages(path) / f"{MODULE}.py").write_text(LOCKED)
    return path


@pytest.fixture(scope="module")
def seed_root(tmp_path_factory) -> Path:
    """A seed made once for the module: compiling the standard library takes seconds, and a
    seed fits any venv of the same lock wherever it lies (pycs name no path)."""
    root = tmp_path_factory.mktemp("cache") / "bytecode"
    venv = new_venv(tmp_path_factory.mktemp("seed-source") / "venv")
    assert bytecode.make_seed(venv, root, "k") == "bytecode seed k made"
    return root


@pytest.fixture
def seeded(confined_mode, tmp_path, seed_root):
    """(workspace, venv, seed root): a workspace whose venv was built from the seed's lock."""
    workspace = Workspace.for_environment(tmp_path / "data", "seeded")
    sandbox.prepare(workspace)
    venv = new_venv(store_dir(workspace.venv) / "3.0.6-built")  # where venv_store builds one
    sandbox.close_tree(workspace, venv)
    return workspace, venv, seed_root


def planted_pyc(workspace: Workspace, venv: Path) -> Path:
    site = bytecode.site_packages(venv)
    tag = sys.implementation.cache_tag
    return workspace.bytecode / site.relative_to("/") / f"{MODULE}.{tag}.pyc"


def import_as_environment(workspace: Workspace, venv: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": str(workspace.bytecode)}
    code = f"import {MODULE}; print({MODULE}.VALUE)"
    launch = sandbox.confine(workspace, [str(venv / "bin" / "python"), "-c", code], env,
                             workspace.home)  # fmt: skip
    result = processes.run(
        launch.argv, env=launch.env, cwd=launch.cwd, identity=launch.identity(), timeout=60
    )
    assert result.ok, result.output
    return result.output.strip().splitlines()[-1]


def flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def test_an_environment_imports_the_lock_from_its_seed_without_compiling(seeded):
    workspace, venv, root = seeded
    assert bytecode.plant(workspace, venv, root, "k") == "bytecode planted: site-packages, stdlib"
    pyc = planted_pyc(workspace, venv)
    assert flags(pyc) == CHECKED_HASH
    before = pyc.stat().st_mtime_ns
    assert import_as_environment(workspace, venv) == "from the lock"
    # Python rewrites a pyc it finds invalid (and a rewritten one is timestamp-based).
    assert (pyc.stat().st_mtime_ns, flags(pyc)) == (before, CHECKED_HASH)
    stdlib_pyc = next(workspace.bytecode.rglob(f"json/__init__.{sys.implementation.cache_tag}.pyc"))
    assert flags(stdlib_pyc) == CHECKED_HASH
    if sandbox.mode() == sandbox.ACCOUNTS:  # the planted copy is the environment's own
        assert pyc.stat().st_uid == sandbox.prepare(workspace).uid
    assert bytecode.plant(workspace, venv, root, "k") == "bytecode planted: all there already"


def test_a_module_changed_after_seeding_runs_as_changed_not_from_the_seed(seeded):
    workspace, venv, root = seeded
    source = bytecode.site_packages(venv) / f"{MODULE}.py"
    stat = source.stat()
    source.write_text(CHANGED)  # same size; and the same mtime, as a reproducible wheel has
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    bytecode.plant(workspace, venv, root, "k")
    assert import_as_environment(workspace, venv) == "from the user"


def test_making_a_seed_runs_nothing_of_the_venv(confined_mode, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([find_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    ran = tmp_path / "ran"
    hook = f"import pathlib; pathlib.Path({str(ran)!r}).write_text('ran')\n"
    (bytecode.site_packages(venv) / "hostile.pth").write_text(hook)
    (bytecode.site_packages(venv) / "sitecustomize.py").write_text(hook.split(";")[1])
    assert bytecode.make_seed(venv, tmp_path / "seeds", "k") == "bytecode seed k made"
    assert not ran.exists()
    assert bytecode.make_seed(venv, tmp_path / "seeds", "k") == "bytecode seed k is ready"


def test_planting_follows_no_link_the_environment_left_in_its_bytecode_folder(seeded, tmp_path):
    """The environment shapes its own bytecode folder. A link it left where the seed goes must
    not carry Airdock's writes out of the workspace."""
    workspace, venv, root = seeded
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    first = bytecode.site_packages(venv).relative_to("/").parts[0]
    workspace.bytecode.mkdir(parents=True, exist_ok=True)
    (workspace.bytecode / first).symlink_to(outside, target_is_directory=True)
    said = bytecode.plant(workspace, venv, root, "k")
    assert said.startswith("bytecode not planted"), said
    assert list(outside.iterdir()) == []


def test_a_missing_or_broken_seed_only_costs_speed(seeded):
    workspace, venv, root = seeded
    assert bytecode.plant(workspace, venv, root, "other") == "no bytecode seed other to plant"
    assert bytecode.plant_for(workspace, venv, root.parent / "uv") == (
        "no bytecode seed recorded for this venv"
    )
    assert import_as_environment(workspace, venv) == "from the lock"


def test_bytecode_of_a_venv_gone_from_the_store_is_removed(seeded):
    """An update builds a new venv beside the old one and prunes the old: its planted bytecode
    (about 100 MB) goes with it."""
    workspace, venv, root = seeded
    store = venv.parent
    old = new_venv(store / "3.0.6-replaced")
    sandbox.close_tree(workspace, old)
    bytecode.plant(workspace, old, root, "k")
    old_bytecode = workspace.bytecode / old.relative_to("/")
    assert old_bytecode.is_dir()
    shutil.rmtree(old)  # the prune
    bytecode.plant(workspace, venv, root, "k")
    assert bytecode.forget_removed_venvs(workspace, store) == "; bytecode of 3.0.6-replaced removed"
    assert not old_bytecode.exists()
    assert (workspace.bytecode / bytecode.site_packages(venv).relative_to("/")).is_dir()
    assert bytecode.forget_removed_venvs(workspace, store) == ""


def test_an_unpacking_cut_short_leaves_nothing_a_later_plant_takes_as_done(seeded, tmp_path):
    """A truncated archive stands for an unpacking that died half-way: the target is not
    there afterwards, so the next plant unpacks it whole."""
    workspace, venv, root = seeded
    broken = tmp_path / "broken" / "k"
    shutil.copytree(root / "k", broken)
    archive = broken / "site-packages.tar"
    archive.write_bytes(archive.read_bytes()[:700])  # a header and part of its first file
    said = bytecode.plant(workspace, venv, broken.parent, "k")
    assert said.startswith("bytecode not planted"), said
    target = planted_pyc(workspace, venv).parent
    assert not target.exists()
    assert not list(target.parent.glob(f"{target.name}.part.*"))
    assert bytecode.plant(workspace, venv, root, "k") == "bytecode planted: site-packages, stdlib"
    assert planted_pyc(workspace, venv).is_file()


def gone(pid: int) -> bool:
    """No such process, or only its zombie (whoever adopted it has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_seed_build_killed_mid_compile_leaves_no_work_behind(tmp_path):
    """SIGKILL the process making a seed while its compile runs: the compile dies with it, and
    the next build removes the killed one's work folder (hundreds of MB for a real lock) and
    makes the seed whole."""
    venv = new_venv(tmp_path / "venv")
    root = tmp_path / "seeds"
    maker = processes.spawn(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from environments.airflow import bytecode; "
         "bytecode.make_seed(Path(sys.argv[1]), Path(sys.argv[2]), 'k')", str(venv), str(root)],
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    compiler: list[int] = []
    try:
        work = wait_until(
            lambda: next((p for p in root.glob(".k.*") if any(p.rglob("*.pyc"))), None),
            timeout=120,
            interval=0.05,
            message="the seed's compile to write its first pycs",
        )
        compiler = processes.children_by_parent().get(maker.pid, [])
        assert compiler, "the compile runs in a child of the maker"
        # Stopped, the compile cannot finish on its own: only its maker's death can end it.
        for pid in compiler:
            os.kill(pid, signal.SIGSTOP)
        os.kill(maker.pid, signal.SIGKILL)
        maker.wait()
        wait_until(
            lambda: all(gone(pid) for pid in compiler),
            timeout=30,
            message="the compile to die with its maker",
        )
    finally:
        processes.kill_group(maker)
        for pid in compiler:
            processes.signal_pid(pid, signal.SIGKILL)
    assert work.is_dir() and not (root / "k").exists()

    assert bytecode.make_seed(venv, root, "k") == "bytecode seed k made"
    assert not work.exists()
    assert [p.name for p in root.iterdir()] == ["k"]


def test_a_live_builds_work_folder_is_left_alone(tmp_path):
    root = tmp_path / "seeds"
    live = root / f".other.{os.getpid()}.abc123"
    live.mkdir(parents=True)
    unnamed = root / ".other.abc123"  # names no maker: nothing tells it is abandoned
    unnamed.mkdir()
    venv = new_venv(tmp_path / "venv")
    assert bytecode.make_seed(venv, root, "k") == "bytecode seed k made"
    assert live.is_dir() and unnamed.is_dir()


def test_a_plant_removes_what_an_unpacking_killed_outright_left(seeded):
    """An unpacking SIGKILLed with its environment's reconcile leaves its `.part` folder (about
    100 MB); the next plant of that target removes it before it unpacks."""
    workspace, venv, root = seeded
    target = planted_pyc(workspace, venv).parent
    left = target.parent / f"{target.name}.part.Ab12Cd"
    launch = sandbox.confine(
        workspace, ["/bin/mkdir", "-p", str(left / "pkg")], {"PATH": "/usr/bin:/bin"},
        workspace.home,
    )  # fmt: skip
    made = processes.run(
        launch.argv, env=launch.env, cwd=launch.cwd, identity=launch.identity(), timeout=60
    )
    assert made.ok and left.is_dir(), made.output
    assert bytecode.plant(workspace, venv, root, "k") == "bytecode planted: site-packages, stdlib"
    assert not list(target.parent.glob(f"{target.name}.part.*"))
    assert planted_pyc(workspace, venv).is_file()
