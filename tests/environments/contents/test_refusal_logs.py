"""A refused DAG key is logged once per change, not on every pass.

Against the embedded AWS of a live server: a real S3 listing, a real workspace, and the
syncer's own log records (caplog); then the server's log file over many polling passes.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from environments.contents.dagsync import DagSyncer
from environments.plumbing.watching import signature
from environments.workspace import Workspace
from tests.conftest import make_prerequisites, start_server, wait_for_status
from tests.waiting import wait_until


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refusing DAG object" in r.getMessage()]


def test_refusals_are_logged_when_they_change(server, prerequisites, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="environments.contents.dagsync")
    s3 = server.aws("s3")
    bucket = prerequisites["SourceBucketArn"].rsplit(":", 1)[-1]
    prefix = f"refusals-{uuid.uuid4().hex[:8]}/dags"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/good.py", Body=b"# fine\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/../escape.py", Body=b"# evil\n")
    syncer = DagSyncer(Workspace(tmp_path / "env"))

    for _ in range(5):
        report = syncer.sync(s3, bucket, prefix)
        assert [key for key, _ in report.refused] == [f"{prefix}/../escape.py"]
    assert len(_refusals(caplog)) == 1  # five passes, one line

    s3.put_object(Bucket=bucket, Key=f"{prefix}/a//b.py", Body=b"# evil\n")
    for _ in range(3):
        syncer.sync(s3, bucket, prefix)
    assert len(_refusals(caplog)) == 2 and "a//b.py" in _refusals(caplog)[-1]

    # Gone, then back: a change each time, so it is logged again when it returns.
    s3.delete_object(Bucket=bucket, Key=f"{prefix}/../escape.py")
    syncer.sync(s3, bucket, prefix)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/../escape.py", Body=b"# evil again\n")
    syncer.sync(s3, bucket, prefix)
    syncer.sync(s3, bucket, prefix)
    assert len(_refusals(caplog)) == 3

    # An S3 event for an already refused key adds nothing; one for a new key does.
    syncer.apply_event(s3, bucket, prefix, f"{prefix}/../escape.py", created=True)
    assert len(_refusals(caplog)) == 3
    s3.put_object(Bucket=bucket, Key=f"{prefix}/./dot.py", Body=b"# evil\n")
    syncer.apply_event(s3, bucket, prefix, f"{prefix}/./dot.py", created=True)
    syncer.sync(s3, bucket, prefix)
    assert len(_refusals(caplog)) == 4
    assert (tmp_path / "env" / "dags" / "good.py").exists()


def test_the_server_log_does_not_grow_with_passes(tmp_path):
    live = start_server(tmp_path / "data", "--dag-sync-interval", "0.1")
    try:
        params = make_prerequisites(live)
        bucket = params["SourceBucketArn"].rsplit(":", 1)[-1]
        s3 = live.aws("s3")
        for i in range(10):
            s3.put_object(Bucket=bucket, Key=f"dags/bad{i}//x.py", Body=b"# evil\n")
        mwaa = live.mwaa()
        mwaa.create_environment(Name="quiet", **params)
        wait_for_status(mwaa, "quiet", {"AVAILABLE"})
        # Each polling pass rewrites the manifest: wait until twenty passes have gone by.
        manifest = live.data_dir / "environments" / "quiet" / "state" / "dags-manifest.json"
        seen: set = set()

        def passes() -> bool:
            seen.add(signature(manifest))
            return len(seen - {None}) >= 20

        wait_until(passes, timeout=60, interval=0.02, message="twenty DAG sync passes")
    finally:
        live.stop()
    text = (tmp_path / "data-server.log").read_text()
    for i in range(10):
        assert text.count(f"refusing DAG object 'dags/bad{i}//x.py'") == 1
