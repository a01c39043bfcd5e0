"""Runs inside an environment's own virtualenv (not Airdock's): parse a DAG folder, write JSON.

    <venv>/bin/python dag_check_child.py <dags_dir> <output.json>

Only the standard library and the environment's Airflow are imported, so the same file works
with every supported Airflow (2.7 to 3.0). Parsing is Airflow's own DagBag, so what counts as a
DAG file, .airflowignore (and its syntax setting), safe mode, the per-file import timeout, cycle
checks and DAG policies are exactly what the scheduler would apply. No database is used.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

MAX_ERROR_CHARS = 4000


def main() -> int:
    dags_dir, output = os.path.realpath(sys.argv[1]), sys.argv[2]
    # As on MWAA, modules next to the DAGs import from the dags root.
    if dags_dir not in sys.path:
        sys.path.insert(0, dags_dir)
    report: dict = {"airflow_version": None, "files": [], "error": None}
    started = time.monotonic()
    try:
        import airflow
        from airflow.configuration import conf
        from airflow.models.dagbag import DagBag
        from airflow.utils.file import list_py_file_paths
    except Exception:
        report["error"] = "Airflow could not be imported:\n" + traceback.format_exc(limit=-4)
        _write(output, report)
        return 3
    report["airflow_version"] = airflow.__version__
    report["import_seconds"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    safe_mode = conf.getboolean("core", "dag_discovery_safe_mode", fallback=True)
    # Every Python/zip file Airflow would look at (after .airflowignore), heuristics aside.
    files: dict[str, dict] = {}
    for path in list_py_file_paths(dags_dir, safe_mode=False):
        name = _relative(path, dags_dir)
        files[name] = {"path": name, "dag_ids": [], "errors": [], "warnings": [], "parsed": False}
    # What DagBag.collect_dags does, one file at a time: some Airflow versions let a file's
    # import timeout (a BaseException) escape and abort the whole bag; here it is that file's
    # error. Safe mode skips files that mention neither "airflow" nor "dag".
    bag = DagBag(dag_folder=dags_dir, include_examples=False, collect_dags=False)
    for path in list_py_file_paths(dags_dir, safe_mode=safe_mode):
        entry = files.setdefault(_relative(path, dags_dir), _blank(path, dags_dir))
        entry["parsed"] = True
        file_started = time.monotonic()
        try:
            found = bag.process_file(path, only_if_updated=False, safe_mode=safe_mode)
            entry["dag_ids"] = sorted(dag.dag_id for dag in found)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # the file's own fault: timeouts, sys.exit(), ...
            bag.import_errors[path] = f"{type(error).__name__}: {error}"
        entry["duration"] = round(time.monotonic() - file_started, 4)
    report["parse_seconds"] = round(time.monotonic() - started, 3)

    for path, error in bag.import_errors.items():
        entry = files.setdefault(_relative(path, dags_dir), _blank(path, dags_dir))
        entry["errors"].append(_trim(str(error), dags_dir))
    for path, warnings in (getattr(bag, "captured_warnings", None) or {}).items():
        entry = files.setdefault(_relative(path, dags_dir), _blank(path, dags_dir))
        entry["warnings"].extend(_trim(str(warning), dags_dir) for warning in warnings)
    report["files"] = sorted(files.values(), key=lambda entry: entry["path"])
    _write(output, report)
    return 0


def _relative(path: str, dags_dir: str) -> str:
    path = os.path.realpath(path) if os.path.isabs(path) else path
    return os.path.relpath(path, dags_dir).replace(os.sep, "/")


def _blank(path: str, dags_dir: str) -> dict:
    name = _relative(path, dags_dir)
    return {"path": name, "dag_ids": [], "errors": [], "warnings": [], "parsed": True}


def _trim(text: str, dags_dir: str) -> str:
    text = text.replace(dags_dir + os.sep, "")
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS // 2] + "\n...\n" + text[-MAX_ERROR_CHARS // 2 :]
    return text


def _write(path: str, report: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    sys.exit(main())
