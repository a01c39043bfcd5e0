"""DAG integrity checks run by the environment's own Airflow, for Airflow 3.0.6 and 2.10.3.

Each version's venv is built once per session from the shared uv cache (see test_venvs.py).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from environments.airflow.locks import supported_versions
from environments.airflow.venv_store import remove_venvs
from environments.airflow.venvs import build_venv
from environments.contents.dag_check import (
    DAG_CHECK_FAILED,
    DAG_CHECK_TIMEOUT,
    DagCheckError,
    DagFileReport,
    check_dags,
)

# The default and the last Airflow 2 MWAA runs; AIRDOCK_TEST_ALL_AIRFLOW=1 checks every lock.
VERSIONS = (
    supported_versions()
    if os.environ.get("AIRDOCK_TEST_ALL_AIRFLOW") == "1"
    else ["3.0.6", "2.10.3"]
)

HEADER = """\
from datetime import datetime

from airflow import DAG

try:  # Airflow 3 ships the operator in the standard provider
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:
    from airflow.operators.empty import EmptyOperator

START = datetime(2024, 1, 1)
"""

FILES = {
    "two_dags.py": HEADER
    + """
for name in ("first", "second"):
    with DAG(f"{name}_dag", start_date=START, schedule=None):
        EmptyOperator(task_id="start") >> EmptyOperator(task_id="end")
""",
    "syntax_error_dag.py": "from airflow import DAG\n\ndef broken(:\n    pass\n",
    "import_error_dag.py": "from airflow import DAG\nimport package_that_is_not_installed\n",
    "team_a/cycle.py": HEADER
    + """
with DAG("cycle_dag", start_date=START, schedule=None):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
""",
    # Imports resolve from the dags root, as on MWAA.
    "team_a/nested/uses_helper.py": HEADER
    + """
from common.names import dag_name

with DAG(dag_name("nested"), start_date=START, schedule=None):
    EmptyOperator(task_id="only")
""",
    "common/__init__.py": "",
    "common/names.py": "def dag_name(base):\n    return f'team_a_{base}'\n",
    # Mentions airflow and dag, so Airflow parses it, but it defines no DAG.
    "common/dag_defaults.py": "NOTE = 'airflow dag defaults'\nRETRIES = 2\n",
    "ignored/broken_dag.py": "from airflow import DAG\nraise RuntimeError('never parsed')\n",
    "scratch_test.py": "from airflow import DAG\nraise RuntimeError('never parsed')\n",
    ".airflowignore": "ignored/\nscratch_test.py\n",  # same meaning as regexp and glob
    "README.md": "not python\n",
}


@pytest.fixture(scope="session")
def uv_cache() -> Path:
    path = Path(os.environ.get("AIRDOCK_TEST_UV_CACHE", Path.home() / ".cache/airdock-tests/uv"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session", params=VERSIONS)
def airflow_env(request, uv_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"airflow-{request.param}")
    result = build_venv(root / "venv", request.param, None, cache_dir=uv_cache)
    assert result.ok, result.output
    # One Airflow home per version: its bytecode cache makes every check after the first fast.
    yield result.python, root / "home"
    remove_venvs(root / "venv")


@pytest.fixture
def airflow_python(airflow_env) -> Path:
    return airflow_env[0]


@pytest.fixture
def home(airflow_env) -> Path:
    return airflow_env[1]


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    root = tmp_path / "dags"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def by_path(reports: list[DagFileReport]) -> dict[str, DagFileReport]:
    return {report.path: report for report in reports}


def test_reports_every_file_airflow_considers(airflow_python, dags, home):
    reports = by_path(check_dags(airflow_python, dags, airflow_home=home))

    assert sorted(reports) == [
        "common/__init__.py",
        "common/dag_defaults.py",
        "common/names.py",
        "import_error_dag.py",
        "syntax_error_dag.py",
        "team_a/cycle.py",
        "team_a/nested/uses_helper.py",
        "two_dags.py",
    ]  # .airflowignore'd files and non-Python files are not there

    assert reports["two_dags.py"].dag_ids == ("first_dag", "second_dag")
    assert reports["two_dags.py"].ok and reports["two_dags.py"].parsed
    assert reports["team_a/nested/uses_helper.py"].dag_ids == ("team_a_nested",)
    assert reports["team_a/nested/uses_helper.py"].ok

    syntax = reports["syntax_error_dag.py"]
    assert not syntax.ok and syntax.dag_ids == ()
    assert "SyntaxError" in syntax.errors[0] and "syntax_error_dag.py" in syntax.errors[0]
    assert str(dags) not in syntax.errors[0]  # paths are relative to the dags folder

    missing = reports["import_error_dag.py"].errors[0]
    assert "ModuleNotFoundError" in missing and "package_that_is_not_installed" in missing

    cycle = reports["team_a/cycle.py"]
    assert cycle.dag_ids == () and "Cycle detected in DAG: cycle_dag" in cycle.errors[0]

    # Helper modules: parsed only if they look like DAG files, and never an error.
    assert reports["common/names.py"].ok and not reports["common/names.py"].parsed
    assert reports["common/dag_defaults.py"].parsed and reports["common/dag_defaults.py"].ok
    assert reports["common/dag_defaults.py"].dag_ids == ()

    assert not list(dags.rglob("__pycache__"))  # the synced dags folder stays as it was


def test_duplicate_dag_ids_are_reported(airflow_python, dags, home):
    (dags / "copy_of_two_dags.py").write_text(FILES["two_dags.py"])

    reports = by_path(check_dags(airflow_python, dags, airflow_home=home))

    # Which file wins depends on parse order; the other one reports the clash.
    errors = reports["copy_of_two_dags.py"].errors + reports["two_dags.py"].errors
    assert len(errors) == 1 and "DuplicatedId" in errors[0]
    assert "first_dag" in errors[0] or "second_dag" in errors[0]


def test_a_slow_file_hits_airflows_import_timeout(airflow_python, home, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "slow_dag.py").write_text("import time\nfrom airflow import DAG\ntime.sleep(60)\n")
    fine = "dag = DAG('fine', start_date=START, schedule=None)\n"
    (dags / "fine_dag.py").write_text(HEADER + fine)

    reports = by_path(
        check_dags(
            airflow_python,
            dags,
            airflow_home=home,
            env={"AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "2"},
        )
    )

    assert "timeout" in reports["slow_dag.py"].errors[0].lower()
    assert reports["fine_dag.py"].dag_ids == ("fine",)


def test_the_whole_check_has_a_time_limit(airflow_python, home, tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "slow_dag.py").write_text("import time\nfrom airflow import DAG\ntime.sleep(60)\n")

    with pytest.raises(DagCheckError) as caught:
        check_dags(airflow_python, dags, airflow_home=home, timeout=1.5)

    assert caught.value.code == DAG_CHECK_TIMEOUT


def test_a_python_without_airflow_is_a_check_failure(dags, tmp_path):
    with pytest.raises(DagCheckError) as caught:
        check_dags(Path(sys.executable), dags, airflow_home=tmp_path / "home")

    assert caught.value.code == DAG_CHECK_FAILED
    assert "Airflow could not be imported" in caught.value.message


def test_an_empty_folder_has_no_reports(airflow_python, home, tmp_path):
    (tmp_path / "dags").mkdir()

    assert check_dags(airflow_python, tmp_path / "dags", airflow_home=home) == []
