"""What the worker-fleet test and scripts/bench_workers.py share: a DAG of N mapped tasks that
each sleep, marking their start and end in S3 with the process chain that ran them, so the
worker that ran a task is known from outside (its pid is in the chain).

With `hold`, each task first waits for `release(...)`: the backlog then lasts as long as the
caller needs (a new worker takes minutes to start on a loaded machine), not a guessed time."""

from __future__ import annotations

import json
from typing import Any

NAP_DAG = '''
import json
import os
import time
from datetime import datetime, timedelta

import boto3
from airflow.decorators import dag, task


def process_chain():
    """This process and its ancestors, up to init."""
    pids, pid = [], os.getpid()
    while pid > 1:
        pids.append(pid)
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return pids


def released():
    s3 = boto3.client("s3")
    return s3.list_objects_v2(Bucket="BUCKET", Prefix="results/DAG_ID/release").get("KeyCount")


def mark(index, attempt, kind):
    body = json.dumps({"t": time.time(), "pids": process_chain()}).encode()
    key = f"results/DAG_ID/{index}-{attempt}-{kind}"
    boto3.client("s3").put_object(Bucket="BUCKET", Key=key, Body=body)


@dag(dag_id="DAG_ID", schedule="@once", start_date=datetime(2024, 1, 1), catchup=False,
     max_active_tasks=64)
def naps():
    @task(retries=RETRIES, retry_delay=timedelta(seconds=1))
    def nap(index, **context):
        attempt = context["ti"].try_number
        mark(index, attempt, "start")
        while HOLD and not released():
            time.sleep(2)
        time.sleep(SECONDS)
        mark(index, attempt, "end")

    nap.expand(index=list(range(COUNT)))


naps()
'''


def put_nap_dag(
    s3: Any,
    bucket: str,
    dag_id: str,
    *,
    count: int,
    seconds: float,
    retries: int = 0,
    hold: bool = False,
) -> None:
    """Upload a DAG (unpaused at creation, scheduled @once) of `count` tasks of `seconds`."""
    body = NAP_DAG
    for token, value in (("DAG_ID", dag_id), ("BUCKET", bucket), ("RETRIES", str(retries)),
                         ("SECONDS", repr(seconds)), ("COUNT", str(count)),
                         ("HOLD", str(hold))):  # fmt: skip
        body = body.replace(token, value)
    s3.put_object(Bucket=bucket, Key=f"dags/{dag_id}.py", Body=body.encode())


def release(s3: Any, bucket: str, dag_id: str) -> None:
    """Let the held tasks of `dag_id` go on."""
    s3.put_object(Bucket=bucket, Key=f"results/{dag_id}/release", Body=b"")


def marks(s3: Any, bucket: str, dag_id: str) -> dict[tuple[int, int, str], dict]:
    """(task index, attempt, "start" | "end") -> {"t": epoch seconds, "pids": [...]}."""
    found: dict[tuple[int, int, str], dict] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"results/{dag_id}/")
    for page in pages:
        for item in page.get("Contents", []):
            if item["Key"].endswith("/release"):
                continue
            index, attempt, kind = item["Key"].rsplit("/", 1)[1].split("-")
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[(int(index), int(attempt), kind)] = json.loads(body)
    return found


def finished(found: dict[tuple[int, int, str], dict]) -> set[int]:
    """The task indexes with an end mark (of any attempt)."""
    return {index for index, _, kind in found if kind == "end"}


def worker_of(record: dict, components: dict[str, dict]) -> str | None:
    """The worker (component name) whose process ran the task that left `record`."""
    pids = set(record["pids"])
    for name, component in components.items():
        if component.get("kind") == "worker" and component.get("pid") in pids:
            return name
    return None
