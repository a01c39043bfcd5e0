"""Benchmark environment virtualenvs and DAG checks.

Rows (median of --rounds, each round in a fresh workspace, uv cache shared and warm):

  baseline: uv venv                  an empty virtualenv
  baseline: uv venv + pip install six a fresh venv with one small package
  build_venv <v>                     Airflow <v> from its lock (no requirements.txt)
  build_venv <v> + requirements      ... plus a requirements.txt (tomli-w)
  build_venv unchanged spec          the idempotent no-op
  build_venv back to previous spec   the symlink swap to a venv built before
  check_dags <v>, N files            DAG check of N small DAG files (first and later runs)
  cold build_venv 3.0.6              with --cold: an empty uv cache (downloads ~100 MB)

Also printed: the venv's size (apparent) and the disk it really adds (files not hardlinked
from the cache).

    .venv/bin/python scripts/bench_venv.py [--rounds 3] [--versions 3.0.6 2.10.3] [--cold]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import benchlib

from environments.airflow.venv_store import remove_venvs
from environments.airflow.venvs import build_venv, find_uv
from environments.contents.dag_check import check_dags

DAG_FILE = """\
from datetime import datetime
from airflow import DAG
try:
    from airflow.providers.standard.operators.empty import EmptyOperator
except ImportError:
    from airflow.operators.empty import EmptyOperator

with DAG("dag_{n}", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b") >> EmptyOperator(task_id="c")
"""


def median_seconds(rounds: int, run: Callable[[Path], None]) -> float:
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="airdock-bench-", dir=scratch_root()) as tmp:
            start = time.perf_counter()
            run(Path(tmp))
            times.append(time.perf_counter() - start)
            remove_venvs(Path(tmp) / "venv")
    return statistics.median(times)


def scratch_root() -> str:
    # Same filesystem as the uv cache, so uv can hardlink (as in a real data dir).
    root = Path.home() / ".cache" / "airdock-bench"
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def uv_venv(cache: Path, tmp: Path, *packages: str) -> None:
    uv, env = find_uv(), {**os.environ, "UV_NO_PROGRESS": "1"}
    run = [uv, "--quiet", "--cache-dir", str(cache)]
    subprocess.run([*run, "venv", str(tmp / "v"), "--python", sys.executable], check=True, env=env)
    if packages:
        target = ["--python", str(tmp / "v" / "bin" / "python")]
        subprocess.run([*run, "pip", "install", *packages, *target], check=True, env=env)


def build(cache: Path, version: str, requirements: bytes | None, tmp: Path):
    result = build_venv(tmp / "venv", version, requirements, cache_dir=cache)
    if not result.ok:
        raise SystemExit(result.output)
    return result


def disk_usage(path: Path) -> tuple[float, float]:
    """(apparent MB, MB not shared with the cache through hardlinks)."""
    apparent = own = 0
    for root, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            apparent += stat.st_size
            if stat.st_nlink == 1:
                own += stat.st_blocks * 512
    return apparent / 1e6, own / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--versions", nargs="+", default=["3.0.6", "2.10.3"])
    parser.add_argument("--dag-files", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="also time an empty uv cache")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache" / "airdock-tests" / "uv"
    )
    args = parser.parse_args()
    cache, rounds = args.cache_dir, args.rounds
    rows: list[list[object]] = []

    def row(label: str, seconds: float, baseline: float | None = None) -> None:
        ratio = f"{seconds / baseline:.1f}x" if baseline else ""
        rows.append([label, f"{seconds:.2f}", ratio])
        print(f"  {label}: {seconds:.2f}s", file=sys.stderr)

    # Warm the cache for every version first so no row pays for downloads.
    for version in args.versions:
        median_seconds(1, lambda tmp, v=version: build(cache, v, b"tomli-w\n", tmp))

    empty = median_seconds(rounds, lambda tmp: uv_venv(cache, tmp))
    row("baseline: uv venv", empty)
    six = median_seconds(rounds, lambda tmp: uv_venv(cache, tmp, "six"))
    row("baseline: uv venv + pip install six", six)

    sizes = []
    for version in args.versions:
        row(
            f"build_venv {version}",
            median_seconds(rounds, lambda t, v=version: build(cache, v, None, t)),
            six,
        )
        with_reqs = median_seconds(rounds, lambda t, v=version: build(cache, v, b"tomli-w\n", t))
        row(f"build_venv {version} + requirements", with_reqs, six)
        with tempfile.TemporaryDirectory(prefix="airdock-bench-", dir=scratch_root()) as tmp:
            result = build(cache, version, None, Path(tmp))
            sizes.append([version, *(f"{mb:.0f}" for mb in disk_usage(result.venv_path))])
            remove_venvs(Path(tmp) / "venv")

    version = args.versions[0]
    with tempfile.TemporaryDirectory(prefix="airdock-bench-", dir=scratch_root()) as tmp:
        work = Path(tmp)
        build(cache, version, None, work)
        build(cache, version, b"tomli-w\n", work)
        row(
            "build_venv unchanged spec",
            timed(lambda: build(cache, version, b"tomli-w\n", work)),
            six,
        )
        row(
            "build_venv back to previous spec",
            timed(lambda: build(cache, version, None, work)),
            six,
        )
        remove_venvs(work / "venv")

    for version in args.versions:
        first, later = dag_check_times(cache, version, args.dag_files, rounds)
        row(f"check_dags {version}, {args.dag_files} files (first run)", first)
        row(f"check_dags {version}, {args.dag_files} files (later runs)", later)

    if args.cold:
        with tempfile.TemporaryDirectory(prefix="airdock-cold-", dir=scratch_root()) as cold:
            empty_cache = Path(cold) / "uv"  # the workspace may not sit inside the cache
            seconds = timed(lambda: build(empty_cache, "3.0.6", None, Path(cold) / "ws"))
            row("cold build_venv 3.0.6 (empty uv cache)", seconds, six)
            remove_venvs(Path(cold) / "ws" / "venv")

    uv_version = subprocess.check_output([find_uv(), "--version"], text=True).strip()
    print(f"\n{benchlib.machine_line()}, {uv_version}")
    benchlib.print_table(
        f"Virtualenvs and DAG checks (median of {rounds})",
        ["case", "seconds", "vs baseline+six"],
        rows,
    )
    benchlib.print_table(
        "Venv size (MB)", ["airflow", "apparent", "own disk (not hardlinked)"], sizes
    )
    return 0


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def dag_check_times(cache: Path, version: str, files: int, rounds: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="airdock-bench-", dir=scratch_root()) as tmp:
        work = Path(tmp)
        python = build(cache, version, None, work).python
        dags = work / "dags"
        for n in range(files):
            folder = dags / f"team_{n % 4}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"dag_{n}.py").write_text(DAG_FILE.format(n=n))
        home = work / "home"
        first = timed(lambda: check(python, dags, home, files))
        later = statistics.median(
            timed(lambda: check(python, dags, home, files)) for _ in range(rounds)
        )
        remove_venvs(work / "venv")
        shutil.rmtree(home, ignore_errors=True)
    return first, later


def check(python: Path, dags: Path, home: Path, files: int) -> None:
    reports = check_dags(python, dags, airflow_home=home)
    if len(reports) != files or not all(r.ok and r.dag_ids for r in reports):
        raise SystemExit(f"unexpected DAG check result: {reports}")


if __name__ == "__main__":
    sys.exit(main())
