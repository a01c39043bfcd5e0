"""Environment virtualenvs built for real with uv: Airflow from its lock, then requirements.txt.

The uv cache lives in ~/.cache/airdock-tests/uv (AIRDOCK_TEST_UV_CACHE overrides it) so that only
the first run on a machine downloads Airflow; every venv after that is hardlinked from the cache
in a second or two. Airflow 3.0.6 and 2.10.3 are always built (the two versions the DAG check
must understand); AIRDOCK_TEST_ALL_AIRFLOW=1 also builds every other lock.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from environments.airflow.locks import lock_for, supported_versions
from environments.airflow.requirements import (
    INVALID_REQUIREMENTS,
    UNSUPPORTED_CONSTRAINTS,
    RequirementsError,
    prepare_requirements,
)
from environments.airflow.venv_store import current_venv, remove_venvs, store_dir
from environments.airflow.venvs import (
    REQUIREMENTS_INSTALL_FAILED,
    REQUIREMENTS_INSTALL_TIMEOUT,
    UNSUPPORTED_AIRFLOW_VERSION,
    UNSUPPORTED_PYTHON,
    InstallResult,
    build_venv,
)
from tests.wheels import write_wheel

AIRFLOW = "3.0.6"
CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/apache/airflow/constraints-{}/constraints-3.11.txt"
)
EXTRA = b"tomli-w\n"  # small, pure Python, and in no lock


@pytest.fixture(scope="session")
def uv_cache() -> Path:
    path = Path(os.environ.get("AIRDOCK_TEST_UV_CACHE", Path.home() / ".cache/airdock-tests/uv"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def workspace(tmp_path: Path):
    """A workspace whose venvs are removed afterwards (each is a few hundred MB of links)."""
    yield tmp_path
    remove_venvs(tmp_path / "venv")


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    path = tmp_path / "plugins"
    path.mkdir()
    return path


def build(workspace: Path, requirements: bytes | None, uv_cache: Path, **kwargs) -> InstallResult:
    kwargs.setdefault("airflow_version", AIRFLOW)
    return build_venv(workspace / "venv", requirements=requirements, cache_dir=uv_cache, **kwargs)


def run_python(venv: Path, code: str) -> str:
    done = subprocess.run(
        [venv / "bin" / "python", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def versions(venv: Path, *names: str) -> list[str]:
    code = "from importlib.metadata import version; print(' '.join(version(n) for n in %r))"
    return run_python(venv, code % (names,)).split()


# -- builds ------------------------------------------------------------------------------------


def test_build_installs_the_lock_and_the_requirements(workspace, uv_cache):
    result = build(workspace, EXTRA, uv_cache)

    assert result.ok, result.error_message
    assert result.error_code is None and not result.skipped
    venv = workspace / "venv"
    assert venv.is_symlink() and current_venv(venv) == result.venv_path.resolve()
    pins = lock_for(AIRFLOW).pins()
    names = ("apache-airflow", "apache-airflow-providers-amazon", "celery", "boto3")
    assert versions(venv, *names) == [pins[name] for name in names]
    assert run_python(venv, "import tomli_w, airflow.providers.amazon; print('ok')") == "ok"
    assert "no constraints in requirements.txt: using the lock" in result.output
    assert result.log_path.read_text() == result.output


def test_unchanged_spec_is_a_no_op(workspace, uv_cache):
    first = build(workspace, EXTRA, uv_cache)
    again = build(workspace, EXTRA, uv_cache)

    assert again.ok and again.skipped
    assert again.venv_path == first.venv_path and again.spec_hash == first.spec_hash
    assert "nothing to do" in again.output


def test_no_requirements_and_empty_requirements_are_the_same_spec(workspace, uv_cache):
    first = build(workspace, None, uv_cache)

    assert first.ok and "no requirements.txt packages to install" in first.output
    assert build(workspace, b"", uv_cache).skipped


def test_bad_package_fails_clearly_and_keeps_the_previous_venv(workspace, uv_cache):
    good = build(workspace, EXTRA, uv_cache)
    bad = build(workspace, b"tomli-w\nno-such-package-airdock-xyz\n", uv_cache)

    assert not bad.ok
    assert bad.error_code == REQUIREMENTS_INSTALL_FAILED
    assert "no-such-package-airdock-xyz" in bad.error_message
    assert str(bad.log_path) in bad.error_message and bad.log_path.exists()
    assert "no-such-package-airdock-xyz" in bad.output
    # Still the previous venv, complete and working; the failed build left nothing behind.
    assert bad.venv_path == current_venv(workspace / "venv") == good.venv_path.resolve()
    assert run_python(workspace / "venv", "import tomli_w; print('ok')") == "ok"
    assert venv_dirs(workspace) == [good.venv_path.name]


def test_pin_that_conflicts_with_the_lock_is_a_clear_error(workspace, uv_cache):
    result = build(workspace, b"boto3==1.20.0\n", uv_cache)

    assert result.error_code == REQUIREMENTS_INSTALL_FAILED
    assert "boto3==1.20.0" in result.error_message
    assert lock_for(AIRFLOW).pins()["boto3"] in result.error_message
    assert current_venv(workspace / "venv") is None  # nothing was ever live


def test_user_constraints_replace_the_lock(workspace, uv_cache, plugins):
    (plugins / "constraints.txt").write_text("tomli-w==1.0.0\nsix==1.16.0\n")
    requirements = b"-c /usr/local/airflow/plugins/constraints.txt\ntomli-w\nsix\n"

    result = build(workspace, requirements, uv_cache, plugins_dir=plugins)

    assert result.ok, result.error_message
    assert "brings its own constraints: the lock is not applied" in result.output
    # The lock says six==1.17.0; with the user's constraints six may move, as on MWAA.
    assert versions(workspace / "venv", "tomli-w", "six") == ["1.0.0", "1.16.0"]
    # Without the -c line the same pin fights the lock.
    clash = build(workspace, b"six==1.16.0\n", uv_cache)
    assert clash.error_code == REQUIREMENTS_INSTALL_FAILED and "six" in clash.error_message


def test_protected_packages_stay_pinned_even_with_user_constraints(workspace, uv_cache, plugins):
    (plugins / "constraints.txt").write_text("celery==5.4.0\n")
    requirements = b"-c /usr/local/airflow/plugins/constraints.txt\ncelery\n"

    result = build(workspace, requirements, uv_cache, plugins_dir=plugins)

    assert result.error_code == REQUIREMENTS_INSTALL_FAILED
    assert "celery" in result.error_message


def test_airflow_constraints_url_maps_to_the_lock(workspace, uv_cache):
    requirements = f"-c {CONSTRAINTS_URL.format(AIRFLOW)}\ntomli-w\n".encode()

    result = build(workspace, requirements, uv_cache)

    assert result.ok, result.error_message
    assert f"Airdock's lock for Airflow {AIRFLOW}" in result.output
    assert "brings its own constraints" in result.output


REFUSED = [
    (f"-c {CONSTRAINTS_URL.format('2.4.3')}", UNSUPPORTED_CONSTRAINTS, "no local copy"),
    ("--constraint=https://example.com/c.txt", UNSUPPORTED_CONSTRAINTS, "cannot be downloaded"),
    ("-e ./src", INVALID_REQUIREMENTS, "editable"),
    ("-r /etc/passwd", INVALID_REQUIREMENTS, "only files from plugins.zip"),
]


def test_refused_lines_change_nothing(workspace, uv_cache):
    good = build(workspace, EXTRA, uv_cache)

    for line, code, words in REFUSED:
        result = build(workspace, f"{line}\ntomli-w\n".encode(), uv_cache)

        assert result.error_code == code and words in result.error_message, line
        assert current_venv(workspace / "venv") == good.venv_path.resolve()
    assert venv_dirs(workspace) == [good.venv_path.name]


def test_timeout_kills_the_install_and_keeps_the_previous_venv(workspace, uv_cache):
    good = build(workspace, None, uv_cache)

    result = build(workspace, EXTRA, uv_cache, timeout=0.3)

    assert result.error_code == REQUIREMENTS_INSTALL_TIMEOUT
    assert "did not finish within 0.3 seconds" in result.error_message
    assert current_venv(workspace / "venv") == good.venv_path.resolve()
    assert venv_dirs(workspace) == [good.venv_path.name]
    assert not processes_mentioning(str(store_dir(workspace / "venv")))


def test_private_wheel_from_plugins_with_no_index(workspace, uv_cache, plugins):
    # MWAA's documented pattern for packages that are not on PyPI.
    write_wheel(plugins / "wheels", "airdock_private", "1.2.3", "VALUE = 42\n")
    requirements = (
        b"--no-index\n--find-links /usr/local/airflow/plugins/wheels\nairdock-private==1.2.3\n"
    )

    result = build(workspace, requirements, uv_cache, plugins_dir=plugins)

    assert result.ok, result.error_message
    assert run_python(workspace / "venv", "import airdock_private as p; print(p.VALUE)") == "42"
    # A new wheel in plugins.zip is a new spec even though requirements.txt did not change.
    write_wheel(plugins / "wheels", "airdock_private", "1.2.4", "VALUE = 43\n")
    assert not build(workspace, requirements, uv_cache, plugins_dir=plugins).skipped


def test_a_plain_directory_at_the_target_is_replaced(workspace, uv_cache):
    (workspace / "venv").mkdir()
    (workspace / "venv" / "old-file").write_text("from before")

    result = build(workspace, None, uv_cache)

    assert result.ok and (workspace / "venv").is_symlink()
    assert venv_dirs(workspace) == [result.venv_path.name]


def test_going_back_to_the_previous_spec_is_a_swap_and_two_venvs_are_kept(workspace, uv_cache):
    first = build(workspace, None, uv_cache)
    second = build(workspace, EXTRA, uv_cache)

    back = build(workspace, None, uv_cache)

    assert second.spec_hash != first.spec_hash
    assert back.ok and not back.skipped and back.venv_path == first.venv_path
    assert "was built before; switching back" in back.output
    assert venv_dirs(workspace) == sorted([first.venv_path.name, second.venv_path.name])
    third = build(workspace, b"tomli-w==1.0.0\n", uv_cache)
    # The live venv and the one before it; the oldest is gone.
    assert venv_dirs(workspace) == sorted([first.venv_path.name, third.venv_path.name])


def test_an_interpreter_that_does_not_run_is_refused(workspace, uv_cache):
    result = build(workspace, None, uv_cache, python="/nonexistent/python3.11")

    assert (
        result.error_code == UNSUPPORTED_PYTHON
        and "/nonexistent/python3.11" in result.error_message
    )
    assert venv_dirs(workspace) == []


def test_unknown_airflow_version(workspace, uv_cache):
    result = build(workspace, None, uv_cache, airflow_version="1.10.12")

    assert result.error_code == UNSUPPORTED_AIRFLOW_VERSION and "3.0.6" in result.error_message


@pytest.mark.parametrize(
    "version",
    [
        pytest.param(
            version,
            marks=pytest.mark.skipif(
                version != "2.10.3" and os.environ.get("AIRDOCK_TEST_ALL_AIRFLOW") != "1",
                reason="set AIRDOCK_TEST_ALL_AIRFLOW=1 to build every supported Airflow",
            ),
        )
        for version in supported_versions()
        if version != AIRFLOW
    ],
)
def test_other_airflow_versions_build(workspace, uv_cache, version):
    result = build(workspace, EXTRA, uv_cache, airflow_version=version)

    assert result.ok, result.error_message
    assert versions(workspace / "venv", "apache-airflow") == [version]
    assert run_python(workspace / "venv", "import airflow.providers.amazon, tomli_w; print(1)")


def venv_dirs(workspace: Path) -> list[str]:
    store = store_dir(workspace / "venv")
    return sorted(p.name for p in store.iterdir() if p.is_dir() and p.name != "logs")


def processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


# -- requirements.txt parsing (no installs) ------------------------------------------------------


def prepare(text: str, plugins: Path | None = None):
    return prepare_requirements(text.encode(), airflow_version=AIRFLOW, plugins_dir=plugins)


def test_plain_requirements_pass_through():
    out = prepare("tomli-w>=1.0  # a comment\nsix==1.17.0 \\\n  --hash=sha256:abc\n")

    assert out.requirements == "tomli-w>=1.0\nsix==1.17.0   --hash=sha256:abc\n"
    assert not out.has_user_constraints and out.constraint_files == []


def test_commented_constraint_opts_out_of_the_default_constraints():
    # MWAA documents "# -c ..." as the way to install without its constraints.
    out = prepare("# -c https://example.com/constraints.txt\nsix\n")

    assert out.has_user_constraints and out.constraint_files == []
    assert "only in a comment" in out.notes[0]


def test_constraints_url_of_any_locked_version_and_python_is_mapped():
    url = CONSTRAINTS_URL.format("2.10.3").replace("3.11.txt", "3.12.txt")

    out = prepare(f"--constraint {url}\n")

    assert out.constraint_files == [lock_for("2.10.3").path]
    assert "Python 3.11, not 3.12" in out.notes[0] and "runs Airflow 3.0.6" in out.notes[0]


def test_plugins_paths_are_mapped(tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "wheels").mkdir(parents=True)
    (plugins / "wheels" / "pkg-1.0-py3-none-any.whl").write_bytes(b"")
    (plugins / "extra.txt").write_text("tomli-w\n--pre\n")

    out = prepare(
        "--find-links /usr/local/airflow/plugins/wheels\n"
        "-r /usr/local/airflow/plugins/extra.txt\n"
        "/usr/local/airflow/plugins/wheels/pkg-1.0-py3-none-any.whl\n"
        "--trusted-host pypi.example.com\n",
        plugins,
    )

    wheels = (plugins / "wheels").resolve()
    assert out.requirements.splitlines() == [
        f"--find-links {wheels}",
        "tomli-w",
        str(wheels / "pkg-1.0-py3-none-any.whl"),
    ]
    assert out.extra_args == ["--prerelease=allow", "--allow-insecure-host", "pypi.example.com"]
    assert len(out.inputs) == 3


@pytest.mark.parametrize(
    "line",
    [
        "--find-links /tmp",
        "./local/package",
        "pkg @ file:///etc/shadow",
        "-c /usr/local/airflow/plugins/../../../../etc/passwd",
        "--index-url file:///srv/index",
        "-r /usr/local/airflow/plugins/missing.txt",
    ],
)
def test_local_paths_outside_plugins_are_refused(tmp_path, line):
    with pytest.raises(RequirementsError) as caught:
        prepare(line + "\n", tmp_path)
    assert caught.value.code == INVALID_REQUIREMENTS


def test_remote_and_index_lines_are_kept():
    text = (
        "--index-url https://pypi.example.com/simple\n"
        "--extra-index-url https://other.example.com/simple\n"
        "pkg @ https://example.com/pkg-1.0.tar.gz ; python_version >= '3.8'\n"
        "git+https://github.com/example/pkg.git@v1\n"
    )

    assert prepare(text).requirements == text


def test_utf16_with_bom_and_invalid_bytes():
    utf16 = "tomli-w\n".encode("utf-16")
    assert prepare_requirements(utf16, airflow_version=AIRFLOW).requirements == "tomli-w\n"
    with pytest.raises(RequirementsError, match="UTF-8"):
        prepare_requirements(b"six\xff\n", airflow_version=AIRFLOW)
