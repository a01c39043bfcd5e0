"""An environment's own virtualenv: Airflow from its lock, then the user's requirements.txt.

Each spec gets a venv of its own, built where it will always live and then switched to in one
atomic step (the layout and the switch: environments.airflow.venv_store).

Idempotency: the venv's name carries a hash of everything the result depends on (lock file,
requirements bytes, files they reference in plugins.zip, the interpreter), so an unchanged spec
is a no-op and going back to the previous spec is just the swap.

Speed: uv's cache (`cache_dir`, shared by all environments) holds unpacked wheels, and uv
hardlinks them into each venv, so a second venv of the same Airflow version costs a few seconds
and little disk, as long as the cache and the venvs are on the same filesystem.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from environments.airflow import bytecode, sandbox
from environments.airflow.locks import (
    LOCKS_DIR,
    AirflowLock,
    UnsupportedAirflowVersion,
    lock_for,
)
from environments.airflow.requirements import (
    PreparedRequirements,
    RequirementsError,
    prepare_requirements,
)
from environments.airflow.venv_store import (
    current_venv,
    is_complete,
    mark_complete,
    new_log,
    prune,
    store_dir,
    switch,
)
from environments.plumbing import processes as procs
from environments.plumbing.locks import FileLock, LockTimeout
from environments.workspace import Workspace

# Bump when the way a venv is built changes, so existing venvs are rebuilt once.
RECIPE = "airdock-venv-2"
MWAA_INSTALL_TIMEOUT = 540.0  # MWAA stops requirements installs after 9 minutes

REQUIREMENTS_INSTALL_FAILED = "REQUIREMENTS_INSTALL_FAILED"
REQUIREMENTS_INSTALL_TIMEOUT = "REQUIREMENTS_INSTALL_TIMEOUT"
AIRFLOW_INSTALL_FAILED = "AIRFLOW_INSTALL_FAILED"
UNSUPPORTED_AIRFLOW_VERSION = "UNSUPPORTED_AIRFLOW_VERSION"
UNSUPPORTED_PYTHON = "UNSUPPORTED_PYTHON"
VENV_BUSY = "VENV_BUSY"
INSTALLER_FAILURES = (
    REQUIREMENTS_INSTALL_FAILED,
    REQUIREMENTS_INSTALL_TIMEOUT,
    AIRFLOW_INSTALL_FAILED,
)


@dataclass(frozen=True)
class InstallResult:
    ok: bool
    output: str  # the full installer output, with Airdock's own lines marked [airdock]
    error_code: str | None = None
    error_message: str | None = None
    duration: float = 0.0
    skipped: bool = False  # the spec was already live: nothing was done
    spec_hash: str = ""
    venv_path: Path | None = None  # the real directory; stable while this venv exists
    log_path: Path | None = None

    @property
    def python(self) -> Path | None:
        return self.venv_path / "bin" / "python" if self.venv_path else None


class _Failure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def find_uv() -> str:
    """The uv binary: the `uv` package's own, else the one next to this Python, else PATH."""
    try:
        from uv import find_uv_bin  # optional: the `uv` distribution ships it

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise FileNotFoundError("uv is not installed (pip install uv)")
    return found


def build_venv(
    target: Path,
    airflow_version: str,
    requirements: bytes | None,
    *,
    cache_dir: Path,
    timeout: float = MWAA_INSTALL_TIMEOUT,
    python: str = sys.executable,
    plugins_dir: Path | None = None,
    locks_dir: Path = LOCKS_DIR,
    workspace: Workspace | None = None,
) -> InstallResult:
    """Make `target` a virtualenv with Airflow `airflow_version` plus `requirements`.

    Never raises for a bad spec: the result says what failed, with an MWAA-style error code, and
    `target` is left as it was. `plugins_dir` is where `/usr/local/airflow/plugins/...` paths
    in the requirements point to (the environment's unpacked plugins.zip).

    Two phases. Airflow from our lock (pinned, hashed, known packages) is installed by Airdock
    from the shared cache (`cache_dir`), hardlinked and read-only for the environment. With a
    `workspace`, requirements.txt (whose sdists run build code) is then installed confined, as
    the environment (environments.airflow.sandbox), with a uv cache of the environment's own:
    a shared, writable cache would let one environment's build poison another's packages.
    """
    start = time.monotonic()
    target = Path(target).absolute()
    log_path = new_log(target)
    with open(log_path, "w", encoding="utf-8") as log:
        run = _Build(target, log, Path(cache_dir).absolute(), timeout, workspace)
        try:
            with run.exclusive():
                result = run.build(airflow_version, requirements, python, plugins_dir, locks_dir)
        except _Failure as failure:
            message = failure.message
            if failure.code in INSTALLER_FAILURES:  # the installer ran: its output explains
                message += f" Full installer output: {log_path}"
            run.say(f"failed: {failure.code}: {failure.message}")
            # The venv still in use (if any): a failed build never touches it.
            result = InstallResult(False, "", failure.code, message, venv_path=current_venv(target))
    output = log_path.read_text(encoding="utf-8", errors="replace")
    return InstallResult(
        ok=result.ok,
        output=output,
        error_code=result.error_code,
        error_message=result.error_message,
        duration=time.monotonic() - start,
        skipped=result.skipped,
        spec_hash=result.spec_hash,
        venv_path=result.venv_path,
        log_path=log_path,
    )


class _Build:
    def __init__(
        self, target: Path, log: IO[str], cache: Path, timeout: float, workspace: Workspace | None
    ):
        self.target, self.store, self.log, self.cache = target, store_dir(target), log, cache
        self.workspace = workspace
        self.limit = timeout
        self.deadline = time.monotonic() + timeout
        self.uv = find_uv()

    def say(self, line: str) -> None:
        self.log.write(f"[airdock] {line}\n")
        self.log.flush()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One build per target at a time (the reconciler's lease should already ensure it)."""
        lock = FileLock(self.store / ".lock", timeout=self.deadline - time.monotonic())
        try:
            lock.acquire()
        except LockTimeout:
            raise _Failure(VENV_BUSY, "Another install of this virtualenv is running.") from None
        try:
            yield
        finally:
            lock.release()

    def build(
        self,
        airflow_version: str,
        requirements: bytes | None,
        python: str,
        plugins_dir: Path | None,
        locks_dir: Path,
    ) -> InstallResult:
        try:
            lock = lock_for(airflow_version, locks_dir)
        except UnsupportedAirflowVersion as error:
            raise _Failure(UNSUPPORTED_AIRFLOW_VERSION, str(error)) from None
        try:
            prepared = prepare_requirements(
                requirements, airflow_version=airflow_version, plugins_dir=plugins_dir,
                locks_dir=locks_dir,
            )  # fmt: skip
        except RequirementsError as error:
            raise _Failure(
                error.code, f"requirements.txt was not installed: {error.message}"
            ) from None
        interpreter = _interpreter(python)
        if interpreter["version"] != lock.python:
            raise _Failure(
                UNSUPPORTED_PYTHON,
                f"The lock for Airflow {airflow_version} is resolved for Python {lock.python}, "
                f"but {python} is Python {interpreter['version']}.",
            )
        spec_hash = _spec_hash(lock, requirements, prepared, interpreter)
        venv = self.store / f"{airflow_version}-{spec_hash[:16]}"
        for note in prepared.notes:
            self.say(note)

        if current_venv(self.target) == venv.resolve():
            self.say(f"{self.target} is already {venv.name}: nothing to do")
            return InstallResult(True, "", skipped=True, spec_hash=spec_hash, venv_path=venv)
        if is_complete(venv):
            self.say(f"{venv.name} was built before; switching back to it")
        else:
            seed = bytecode.seed_key(airflow_version, lock.read_bytes(), interpreter)
            self._install(venv, lock, prepared, python, airflow_version, spec_hash, seed)
        previous = current_venv(self.target)
        switch(self.target, venv, self.say)
        prune(self.target, {venv.resolve(), previous}, self.say)
        self.say(f"{self.target} -> {venv.name}")
        return InstallResult(True, "", spec_hash=spec_hash, venv_path=venv)

    def _install(
        self,
        venv: Path,
        lock: AirflowLock,
        prepared: PreparedRequirements,
        python: str,
        airflow_version: str,
        spec_hash: str,
        seed: str,
    ) -> None:
        if venv.exists():  # a build that crashed or failed half-way
            shutil.rmtree(venv)
        try:
            self._uv("venv", venv, "--python", python, what="Creating the virtualenv")
            py = venv / "bin" / "python"
            sync: tuple[object, ...] = ("pip", "sync", lock.path, "--python", py)
            if lock.build_constraints:
                sync += ("--build-constraints", lock.build_constraints)
            if self._confined_writes_venv(prepared):
                # Under bubblewrap every environment is the same user: a file hardlinked from
                # the shared cache would be writable by the confined install, and a change to
                # it would reach every other environment. Copies keep the cache out of reach.
                sync += ("--link-mode", "copy")
            # Every package of the lock is pinned and hashed, so when the cache already holds
            # them the index need not be asked: faster, and it works without network access.
            if not self._uv(
                *sync, "--offline", what="Installing Airflow from the cache", check=False
            ):
                self.say("not everything is cached yet: installing from the package index")
                self._uv(*sync, what=f"Installing Airflow {airflow_version}")
            if self.workspace is not None:
                sandbox.close_tree(self.workspace, venv)
            # Now, while the venv holds nothing but the lock (see environments.airflow.bytecode).
            self.say(bytecode.make_seed(venv, bytecode.seeds_root(self.cache), seed))
            if prepared.requirements.strip():
                self._install_requirements(venv, lock, prepared)
            else:
                self.say("no requirements.txt packages to install")
            mark_complete(
                venv,
                spec_hash=spec_hash,
                airflow_version=airflow_version,
                python=python,
                # Nothing but Airdock's lock (runtime.templates trusts such a venv).
                requirements="installed" if prepared.requirements.strip() else "none",
                bytecode=seed,
            )
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise

    def _confined_writes_venv(self, prepared: PreparedRequirements) -> bool:
        return (
            self.workspace is not None
            and bool(prepared.requirements.strip())
            and sandbox.mode() == sandbox.BUBBLEWRAP
        )

    def _install_requirements(
        self, venv: Path, lock: AirflowLock, prepared: PreparedRequirements
    ) -> None:
        work = venv / ".airdock"
        work.mkdir(exist_ok=True)
        (work / "requirements.txt").write_text(prepared.requirements)
        # MWAA's essential constraints apply whatever the user brings (its safe-pip-install).
        (work / "essential-constraints.txt").write_text(lock.essential_constraints())
        for written in work.iterdir():
            written.chmod(0o644)  # read by the confined installer
        constraints = ["-c", work / "essential-constraints.txt"]
        if prepared.has_user_constraints:
            self.say("requirements.txt brings its own constraints: the lock is not applied")
            for path in prepared.constraint_files:
                constraints += ["-c", path]
        else:
            self.say(f"no constraints in requirements.txt: using the lock ({lock.path.name})")
            constraints += ["-c", lock.path]
        cache = self.cache
        if self.workspace is not None:
            cache = self.store / ".uv-cache"
            cache.mkdir(exist_ok=True)
            sandbox.hand_over(self.workspace, cache)
            sandbox.hand_over(self.workspace, venv)
            sandbox.reachable(Path(self.uv), lock.path)
            self.say("installing requirements.txt as the environment, with its own package cache")
        self._uv(
            "pip", "install", "-r", work / "requirements.txt", *constraints,
            *prepared.extra_args, "--python", venv / "bin" / "python",
            what="Installing requirements.txt", code=REQUIREMENTS_INSTALL_FAILED,
            cache=cache, confined=(venv, cache) if self.workspace is not None else None,
        )  # fmt: skip

    def _uv(
        self,
        *args: object,
        what: str,
        code: str = AIRFLOW_INSTALL_FAILED,
        check: bool = True,
        cache: Path | None = None,
        confined: tuple[Path, ...] | None = None,  # run as the environment; it may write these
    ) -> bool:
        command = [
            self.uv,
            *map(os.fspath, args),
            "--cache-dir",
            cache or self.cache,
            "--no-config",
        ]
        self.say("$ " + " ".join(map(str, command)))
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(self.limit)
        # cwd "/": no project or config file around the workspace can steer uv.
        env, cwd, identity = _uv_env(), Path("/"), {"umask": 0o022}  # a venv others may read
        if confined is not None and self.workspace is not None:
            launch = sandbox.confine(
                self.workspace, command, _confined_uv_env(), cwd, writable=confined
            )
            command, env, identity = launch.argv, launch.env, launch.identity()
        result = procs.run(
            command, timeout=remaining, env=env, cwd=cwd, log=self.log, identity=identity
        )
        self.say(f"{what}: {'ok' if result.ok else 'failed'} in {result.duration:.1f}s")
        if result.timed_out:
            raise _timeout(self.limit)
        if not result.ok and check:
            summary = summarize(result.output).rstrip(".")
            raise _Failure(code, f"{what} failed: {summary}.")
        return result.ok


def summarize(output: str, limit: int = 700) -> str:
    """The installer's own error (uv: "error: ..." and its "cause:" lines) in a few lines."""
    lines = output.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith(("error:", "\u00d7"))), None
    )
    picked = lines[start : start + 8] if start is not None else lines[-5:]
    text = " ".join(line.strip().strip("╰─▶│").strip() for line in picked if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _timeout(limit: float) -> _Failure:
    return _Failure(
        REQUIREMENTS_INSTALL_TIMEOUT,
        f"Installing the environment's packages did not finish within {limit:.3g} seconds and "
        "was stopped; the previous virtualenv is still in use.",
    )


def _uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    # Plain, stable log text, and never fetch a Python behind the caller's back.
    env.update(NO_COLOR="1", UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")
    return env


def _confined_uv_env() -> dict[str, str]:
    """What a confined install needs of our environment: how to reach the package index
    (uv's and pip's settings, proxies, certificates), nothing else."""
    passed = {
        key: value
        for key, value in os.environ.items()
        if (key.startswith(("UV_", "PIP_")) and key != "UV_CACHE_DIR")
        or key.upper() in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
        or key in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
    }
    passed.update(PATH="/usr/local/bin:/usr/bin:/bin", LANG="C.UTF-8", NO_COLOR="1",
                  UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")  # fmt: skip
    return passed


def _interpreter(python: str) -> dict[str, str]:
    probe = (
        "import json, os, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
        "'full': sys.version, 'base': os.path.realpath(sys._base_executable)}))"
    )
    try:
        done = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise _Failure(
            UNSUPPORTED_PYTHON, f"Cannot run the interpreter {python}: {error}"
        ) from None
    return json.loads(done.stdout)


def _spec_hash(
    lock: AirflowLock,
    requirements: bytes | None,
    prepared: PreparedRequirements,
    interpreter: dict[str, str],
) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE.encode(), lock.read_bytes(), requirements or b"", interpreter["full"]):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    digest.update(interpreter["base"].encode())
    for path in prepared.inputs:
        for entry in _fingerprint(path):
            digest.update(entry.encode() + b"\0")
    return digest.hexdigest()


def _fingerprint(path: Path) -> Iterator[str]:
    """What a referenced plugins.zip file or --find-links folder contributes to the hash."""
    if path.is_file():
        yield f"{path}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file():
                stat = child.stat()
                yield f"{child}:{stat.st_size}:{stat.st_mtime_ns}"
