"""Snapshots compact the journal while writes go on, and a SIGKILL still loses nothing.

The server runs with a tiny compaction threshold, so snapshots, segment rotations and
deletions happen many times while four clients write; then it is SIGKILLed right after the
last acknowledged write and restarted on the same state directory. The old snapshot-only
mode, kept as the benchmark's baseline, still saves on an orderly stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from environments.emulator.state import journal_file
from environments.emulator.supervisor import free_port
from environments.plumbing import processes
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
WRITERS, WRITES = 4, 40
COMPACT_OFTEN = ("--compact-min-records", "20", "--snapshot-interval", "0.05")


@contextlib.contextmanager
def server(state_dir: Path, port: int, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "environments.emulator.server", "--port", str(port)]
    command += ["--state-dir", str(state_dir), *flags]
    with open(state_dir.parent / "aws.log", "ab") as log:
        process = processes.spawn(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
    try:
        wait_until(
            lambda: _answers(port) or process.poll() is not None,
            timeout=60,
            message="the embedded AWS to answer",
        )
        assert process.poll() is None, "the embedded AWS exited during start-up"
        yield process
    finally:
        processes.signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
            return True
    except OSError:
        return False


def client(port: int, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def test_writes_during_compaction_survive_sigkill(tmp_path: Path) -> None:
    state, port = tmp_path / "aws-state", free_port()
    acknowledged: dict[str, bytes] = {}
    log_groups: set[str] = set()
    with server(state, port, *COMPACT_OFTEN) as process:
        client(port, "s3").create_bucket(Bucket="compacted")

        def write(writer: int) -> None:
            s3, logs = client(port, "s3"), client(port, "logs")
            for i in range(WRITES):
                key, body = f"w{writer}/{i}", os.urandom(64)
                s3.put_object(Bucket="compacted", Key=key, Body=body)
                acknowledged[key] = body
                logs.create_log_group(logGroupName=f"group-{writer}-{i}")
                log_groups.add(f"group-{writer}-{i}")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(acknowledged) == WRITERS * WRITES
        wait_until(
            lambda: list((state / "snapshots").glob("gen-*.snap")),
            message="a compacting snapshot",
        )
        client(port, "s3").put_object(Bucket="compacted", Key="last", Body=b"last")
        acknowledged["last"] = b"last"
        processes.signal_group(process.pid, signal.SIGKILL)

    # Compaction deleted the oldest journal segments: record 1 is gone from the disk.
    assert journal_file.segments(state / "journal")[0][0] > 1

    with server(state, port, *COMPACT_OFTEN):
        s3 = client(port, "s3")
        for key, body in acknowledged.items():
            assert s3.get_object(Bucket="compacted", Key=key)["Body"].read() == body
        paginator = client(port, "logs").get_paginator("describe_log_groups")
        names = {g["logGroupName"] for page in paginator.paginate() for g in page["logGroups"]}
        assert names == log_groups


def test_the_snapshot_only_mode_still_saves_and_takes_over_a_journal(tmp_path: Path) -> None:
    state, port = tmp_path / "aws-state", free_port()
    with server(state, port) as process:
        sqs = client(port, "sqs")
        url = sqs.create_queue(QueueName="switched")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="sent under the journal")
        processes.signal_group(process.pid, signal.SIGKILL)

    with server(state, port, "--durability", "snapshot") as process:
        # The journal was replayed once, then folded into a snapshot and dropped.
        assert waiting_messages(port, url) == 1
        assert not (state / "journal").exists()
        client(port, "s3").create_bucket(Bucket="snapshot-mode")
        processes.kill_group(process)

    with server(state, port):
        assert waiting_messages(port, url) == 1
        buckets = client(port, "s3").list_buckets()["Buckets"]
        assert [b["Name"] for b in buckets] == ["snapshot-mode"]


def waiting_messages(port: int, url: str) -> int:
    attributes = client(port, "sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])
