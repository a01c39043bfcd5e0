"""`airdock env wait` and controlplane.waiting against a live server: progress, outcomes and
exit codes, a stopped server, and the same authorization as GetEnvironment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import waiting
from controlplane.server_link import ServerLink, signed_get
from tests.conftest import ROOT, LiveServer, start_server

CLI_ENV = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def env_wait(server: LiveServer, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane.cli",
            "env",
            "wait",
            *args,
            "--data-dir",
            str(server.data_dir),
            "--interval",
            "0.1",
        ],
        cwd=ROOT,
        env=CLI_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_wait_until_available_shows_steps_then_settles(server, mwaa, params, env_name):
    mwaa.create_environment(Name=env_name, **params())
    done = env_wait(server, env_name)
    assert done.returncode == 0, done.stderr
    assert f"{env_name}: AVAILABLE after" in done.stdout
    # Progress went to stderr, one plain line per change (not a terminal here).
    assert f"{env_name}: AVAILABLE" in done.stderr
    again = env_wait(server, env_name, "--until", "AVAILABLE")
    assert again.returncode == 0


def test_wait_for_deleted_then_missing(server, mwaa, params, env_name):
    mwaa.create_environment(Name=env_name, **params())
    assert waiting.wait_for_environment(mwaa, env_name, timeout=60, interval=0.1)["Status"] == (
        "AVAILABLE"
    )
    mwaa.delete_environment(Name=env_name)
    gone = env_wait(server, env_name, "--until", "DELETED")
    assert gone.returncode == 0, gone.stderr
    assert "gone after" in gone.stdout
    missing = env_wait(server, env_name)
    assert missing.returncode == 1
    assert f"environment {env_name} does not exist" in missing.stderr


def test_failed_environment_exits_1_with_its_error(server, mwaa, params, env_name):
    # A role that does not exist: the execution-role check fails the environment.
    mwaa.create_environment(
        Name=env_name, **params(ExecutionRoleArn="arn:aws:iam::123456789012:role/missing")
    )
    failed = env_wait(server, env_name)
    assert failed.returncode == 1, failed.stderr
    assert "CREATE_FAILED" in failed.stderr
    assert "missing" in failed.stderr  # the LastUpdate error names the role
    with pytest.raises(waiting.EnvironmentFailed) as info:
        waiting.wait_for_environment(mwaa, env_name, timeout=30, interval=0.1)
    assert info.value.last.status == "CREATE_FAILED"
    assert info.value.last.error
    both = env_wait(server, env_name, "--until", "AVAILABLE", "--until", "CREATE_FAILED")
    assert both.returncode == 0


def test_timeout_exits_3_naming_the_running_step(server, mwaa, params, env_name):
    # A startup script that takes a while holds the environment in CREATING at that step.
    bucket = params()["SourceBucketArn"].rsplit(":", 1)[-1]
    version = server.aws("s3").put_object(
        Bucket=bucket, Key=f"{env_name}/startup.sh", Body=b"sleep 8\n"
    )["VersionId"]
    mwaa.create_environment(
        Name=env_name,
        **params(
            StartupScriptS3Path=f"{env_name}/startup.sh", StartupScriptS3ObjectVersion=version
        ),
    )
    late = env_wait(server, env_name, "--timeout", "1")
    assert late.returncode == 3, late.stderr
    assert f"environment {env_name} is still CREATING" in late.stderr
    with pytest.raises(waiting.WaitTimedOut):
        waiting.wait_for_environment(mwaa, env_name, timeout=0.2, interval=0.1)
    done = env_wait(server, env_name)
    assert done.returncode == 0, done.stderr
    assert "startup-script" in done.stderr  # the step it waited on was shown


def test_bad_flags_are_refused_with_choices(server):
    wrong = env_wait(server, "x", "--until", "READY")
    assert wrong.returncode == 2
    assert "invalid choice: 'READY'" in wrong.stderr and "AVAILABLE" in wrong.stderr
    negative = env_wait(server, "x", "--timeout", "-1")
    assert negative.returncode == 2 and "positive number of seconds" in negative.stderr
    with pytest.raises(ValueError, match="choose from"):
        waiting.normalise_until("READY")


def test_help_documents_exit_codes():
    shown = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "env", "wait", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "exit codes:" in shown and "3  the timeout ran out first" in shown
    assert "(default: AVAILABLE)" in shown


def test_stopped_server_is_named(tmp_path: Path):
    live = start_server(tmp_path / "data")
    live.stop()
    down = env_wait(live, "demo")
    assert down.returncode == 2
    assert f"no Airdock server at {live.url}; start it with ./scripts/up" in down.stderr
    infra = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "infra", "up", "--data-dir", str(live.data_dir)],
        cwd=ROOT, env=CLI_ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert infra.returncode == 2
    assert f"no Airdock server at {live.url}; start it with ./scripts/up" in infra.stderr
    sync = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "env", "sync", "demo",
         "--data-dir", str(live.data_dir)],
        cwd=ROOT, env=CLI_ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sync.returncode == 2
    assert f"no Airdock server at {live.url}; start it with ./scripts/up" in sync.stderr
    nothing = env_wait(
        LiveServer(tmp_path / "never", live.process, live.endpoints), "demo", timeout=30
    )
    assert nothing.returncode == 2 and "start it with ./scripts/up" in nothing.stderr


def test_progress_is_authorized_like_get_environment(server, mwaa, params, env_name):
    mwaa.create_environment(Name=env_name, **params())
    waiting.wait_for_environment(mwaa, env_name, timeout=60, interval=0.1)
    from botocore.credentials import Credentials

    admin = ServerLink(server.url, "us-east-1", Credentials(*server.admin_key()))
    found = signed_get(admin, f"/_airdock/environments/{env_name}/progress")
    assert found["Status"] == "AVAILABLE"
    assert found["Step"]["Done"] == found["Step"]["Total"] > 10
    assert found["Components"] == []
    # What the Airflow runtime records for the environment is reported as its components.
    state = server.data_dir / "environments" / env_name / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "runtime.json").write_text(
        json.dumps(
            {
                "healthy": False,
                "components": {
                    "scheduler": {"state": "running", "restarts": 0, "last_error": None},
                    "worker-1": {"state": "backoff", "restarts": 2, "last_error": "exit 1"},
                },
            }
        )
    )
    found = signed_get(admin, f"/_airdock/environments/{env_name}/progress")
    assert found["Components"] == [
        {"Name": "scheduler", "State": "running", "Detail": ""},
        {"Name": "worker-1", "State": "backoff", "Detail": "2 restarts; exit 1"},
    ]
    shown = env_wait(server, env_name)
    assert "components: scheduler running, worker-1 backoff" in shown.stderr
    stranger = ServerLink(server.url, "us-east-1", Credentials("AKIANOBODY0000000000", "x" * 40))
    with pytest.raises(Exception) as info:
        signed_get(stranger, f"/_airdock/environments/{env_name}/progress")
    assert getattr(info.value, "code", None) == "UnrecognizedClientException"
