"""Hostile inputs for the content code: S3 keys that try to escape, archives that attack."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from environments.contents.archives import ArchiveLimits, UnsafeArchive, extract_zip
from environments.contents.dagsync import UnsafeKey, relative_path
from environments.contents.startup import is_protected, run_startup_script


@pytest.mark.parametrize(
    "key",
    [
        "dags/../evil.py",
        "dags/a/../../evil.py",
        "dags//double.py",
        "dags/./dot.py",
        "dags/",
        "dags/a\\b.py",
        "dags/nul\x00.py",
        "dags/.airdock-tmp",
        "other/outside.py",
        "dags/" + "x" * 300 + ".py",
    ],
)
def test_unsafe_keys_are_refused(key):
    with pytest.raises(UnsafeKey):
        relative_path(key, "dags/")


def test_safe_keys_keep_their_folders():
    assert str(relative_path("dags/team/etl/job.py", "dags/")) == "team/etl/job.py"
    assert str(relative_path("dags/.airflowignore", "dags/")) == ".airflowignore"
    assert str(relative_path("job.py", "")) == "job.py"


def _zip(path: Path, entries: list[tuple[str, bytes]], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, "/etc/passwd")
    return path


def test_good_archive_replaces_the_folder(tmp_path):
    target = tmp_path / "plugins"
    target.mkdir()
    (target / "stale.py").write_text("old")
    archive = _zip(tmp_path / "p.zip", [("ops/my_operator.py", b"x = 1\n"), ("top.py", b"")])
    assert sorted(extract_zip(archive, target)) == ["ops/my_operator.py", "top.py"]
    assert not (target / "stale.py").exists()
    assert (target / "ops" / "my_operator.py").read_text() == "x = 1\n"


@pytest.mark.parametrize(
    ("entries", "symlink", "needle"),
    [
        ([("../escape.py", b"x")], None, "outside"),
        ([("ok/../../escape.py", b"x")], None, "outside"),
        ([("/etc/cron.d/evil", b"x")], None, "absolute"),
        ([("C:/windows/evil", b"x")], None, "absolute"),
        ([("ok.py", b"x")], "link", "symbolic link"),
        # One path as a file and as a folder, in either order: no extraction can honour both.
        ([("a", b"x"), ("a/b.py", b"y")], None, "use 'a' as a folder"),
        ([("a/b.py", b"y"), ("a", b"x")], None, "use 'a' as a folder"),
        ([("ops/", b""), ("ops", b"x")], None, "use 'ops' as a folder"),
        ([("x/a", b"x"), ("x/a/b/c.py", b"y")], None, "use 'x/a' as a folder"),
    ],
)
def test_hostile_archives_are_refused_and_change_nothing(tmp_path, entries, symlink, needle):
    target = tmp_path / "plugins"
    target.mkdir()
    (target / "kept.py").write_text("still here")
    archive = _zip(tmp_path / "evil.zip", entries, symlink=symlink)
    with pytest.raises(UnsafeArchive, match=needle):
        extract_zip(archive, target)
    assert (target / "kept.py").read_text() == "still here"
    assert not (tmp_path / "escape.py").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".airdock")] == []


def test_zip_bombs_are_refused_by_ratio_and_by_size(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", [("zeros.bin", b"\0" * (20 * 1024 * 1024))])
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        extract_zip(bomb, tmp_path / "plugins")
    big = _zip(tmp_path / "big.zip", [(f"f{i}", bytes(range(256)) * 4096) for i in range(4)])
    with pytest.raises(UnsafeArchive, match="more than"):
        extract_zip(big, tmp_path / "plugins", ArchiveLimits(max_total_bytes=2 * 1024 * 1024))
    many = _zip(tmp_path / "many.zip", [(f"f{i}", b"") for i in range(20)])
    with pytest.raises(UnsafeArchive, match="entries"):
        extract_zip(many, tmp_path / "plugins", ArchiveLimits(max_entries=10))


def test_not_a_zip(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(UnsafeArchive, match="not a valid zip"):
        extract_zip(junk, tmp_path / "plugins")


def test_startup_script_exports_and_protection(tmp_path):
    script = tmp_path / "startup.sh"
    script.write_text(
        "echo hello from $MWAA_AIRFLOW_COMPONENT\n"
        "export MY_SETTING=42\n"
        "export AIRFLOW_HOME=/tmp/hijack\n"
        "export MWAA__CORE__X=1\n"
        "export PYTHONPATH=/evil\n"
    )
    run = run_startup_script(
        script, {"MWAA_AIRFLOW_COMPONENT": "worker", "AIRFLOW_HOME": str(tmp_path)}, cwd=tmp_path
    )
    assert run.ok and "hello from worker" in run.output
    assert run.exported == {"MY_SETTING": "42"}
    assert sorted(run.ignored) == ["AIRFLOW_HOME", "MWAA__CORE__X", "PYTHONPATH"]
    assert is_protected("ECS_CONTAINER_METADATA_URI") and not is_protected("MY_SETTING")
    assert run.log_lines() == [
        "hello from worker",
        "Ignored protected variables: AIRFLOW_HOME, MWAA__CORE__X, PYTHONPATH",
    ]


def test_startup_script_failure_timeout_and_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRDOCK_SECRET_IN_PARENT", "do-not-leak")
    script = tmp_path / "s.sh"
    script.write_text('echo "secret=[$AIRDOCK_SECRET_IN_PARENT]"; exit 3\n')
    run = run_startup_script(script, {}, cwd=tmp_path)
    assert run.exit_code == 3 and not run.ok
    assert "secret=[]" in run.output
    assert run.failure(300) == "exited with code 3"
    script.write_text("sleep 30\n")
    slow = run_startup_script(script, {}, cwd=tmp_path, timeout=0.5)
    assert slow.timed_out and not slow.ok
    assert slow.failure(300) == "timed out after 300 s"
