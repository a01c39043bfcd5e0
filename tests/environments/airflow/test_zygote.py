"""The zygote: one interpreter imports what an environment's processes share, then forks each.

Against the real zygote script and real processes, with fake programs in place of Airflow's
`airflow` command (the zygote runs any Python script as its `__main__`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from environments.airflow.runtime import configuration, pidfiles
from environments.airflow.runtime import zygote as zygote_module
from environments.airflow.runtime.supervisor import EnvironmentSupervisor
from environments.airflow.runtime.zygote import GONE, SOURCE, Zygote, usable
from environments.plumbing import processes
from tests.environments.airflow.test_runtime_parts import plan
from tests.waiting import wait_until

PROGRAM = """#!{python}
import gc, json, os, sys, time
print(json.dumps({{
    "frozen": getattr(sys.modules.get("sitecustomize"), "_frozen", None),
    "freeze_count": gc.get_freeze_count(),
    "argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid(), "pgid": os.getpgid(0),
    "sid": os.getsid(0), "ppid": os.getppid(), "value": os.environ.get("FAKE_VALUE"),
    "foreign": os.environ.get("ZYGOTE_ONLY"), "preloaded": "email.mime.text" in sys.modules,
    "name": __name__,
}}), flush=True)
if os.environ.get("FAKE_SLEEP"):
    time.sleep(600)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@dataclass
class PlainLaunch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    mode: str = "none"
    ids: dict = field(default_factory=dict)

    def identity(self) -> dict:
        return self.ids


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "airflow"
    path.write_text(PROGRAM.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def zygote(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "ZYGOTE_ONLY": "from the zygote's start"}
    made = Zygote.start(
        lambda argv: PlainLaunch(argv, env, tmp_path),
        Path(sys.executable),
        SOURCE,
        tmp_path / "zygote.log",
        preload=("email.mime.text",),
    )
    yield made
    made.stop()


def fork(zygote: Zygote, program: Path, log: Path, **env: str):
    with open(log, "ab") as output:
        return zygote.fork([str(program), "scheduler", "--flag"], {"PATH": "/usr/bin", **env},
                           log.parent, output)  # fmt: skip


def start_sleeper(zygote: Zygote, program: Path, log: Path):
    """A component that sleeps, once it has started."""
    sleeper = fork(zygote, program, log, FAKE_SLEEP="1")
    wait_until(lambda: log.exists() and log.read_text(), timeout=30, message="the sleeper")
    return sleeper


def said(log: Path) -> dict:
    return json.loads(log.read_text().splitlines()[-1])


def test_a_component_runs_its_program_as_asked_in_a_session_of_its_own(
    zygote: Zygote, program: Path, tmp_path: Path
) -> None:
    log = tmp_path / "one.log"
    child = fork(zygote, program, log, FAKE_VALUE="mine")
    assert child.wait(30) == 0
    seen = said(log)
    assert seen["argv"] == [str(program), "scheduler", "--flag"]
    assert seen["name"] == "__main__"
    assert seen["cwd"] == str(tmp_path)
    assert seen["value"] == "mine"
    assert seen["foreign"] is None, "the zygote's own environment leaked into a component"
    assert seen["pid"] == seen["pgid"] == seen["sid"] == child.pid
    assert seen["ppid"] == zygote.process.pid
    assert seen["preloaded"] is True


def test_a_component_shares_the_zygotes_frozen_objects_and_freezes_its_own_anew(
    program: Path, tmp_path: Path
) -> None:
    # The fork hook every Airflow process imports (fork_sharing_child, as sitecustomize).
    support = tmp_path / "support"
    support.mkdir()
    (support / "sitecustomize.py").write_bytes(configuration.FORK_SHARING_SOURCE.read_bytes())
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(support)}
    zygote = Zygote.start(
        lambda argv: PlainLaunch(argv, env, tmp_path),
        Path(sys.executable),
        SOURCE,
        tmp_path / "zygote.log",
    )
    try:
        log = tmp_path / "frozen.log"
        assert fork(zygote, program, log, PYTHONPATH=str(support)).wait(30) == 0
    finally:
        zygote.stop()
    seen = said(log)
    assert seen["freeze_count"] > 0  # what the zygote froze before it forked
    assert seen["frozen"] == []  # and the component's own first fork freezes again


def test_exit_statuses_are_those_popen_would_give(
    zygote: Zygote, program: Path, tmp_path: Path
) -> None:
    assert fork(zygote, program, tmp_path / "a.log", FAKE_EXIT="3").wait(30) == 3
    sleeper = start_sleeper(zygote, program, tmp_path / "b.log")
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(0.2)
    assert sleeper.poll() is None
    processes.signal_group(sleeper.pid, signal.SIGKILL)
    assert sleeper.wait(30) == -signal.SIGKILL
    assert sleeper.poll() == -signal.SIGKILL


def test_a_killed_zygote_takes_its_components_with_it(
    zygote: Zygote, program: Path, tmp_path: Path
) -> None:
    sleeper = start_sleeper(zygote, program, tmp_path / "s.log")
    os.kill(zygote.process.pid, signal.SIGKILL)
    assert sleeper.wait(30) == GONE
    wait_until(lambda: not processes.is_running(sleeper.pid), timeout=10,
               message="the component to die with its zygote")  # fmt: skip
    assert not zygote.alive()
    with pytest.raises(OSError):
        fork(zygote, program, tmp_path / "late.log")


def test_closing_the_channel_ends_the_zygote(zygote: Zygote, program: Path, tmp_path: Path) -> None:
    assert fork(zygote, program, tmp_path / "c.log").wait(30) == 0
    zygote.stop()
    assert zygote.process.returncode == 0  # it left by itself, not by stop's SIGKILL
    assert not zygote.alive()


def test_only_processes_with_the_zygotes_environment_are_forked(zygote: Zygote) -> None:
    same = dict(zygote.env, MWAA_AIRFLOW_COMPONENT="worker", MWAA_COMMAND="worker")
    assert zygote.accepts(same)
    assert not zygote.accepts(dict(zygote.env, AIRFLOW__CORE__PARALLELISM="9"))
    assert not zygote.accepts({k: v for k, v in zygote.env.items() if k != "ZYGOTE_ONLY"})


SHELL_LINE = """#!/bin/sh
'''exec' "{python}" "$0" "$@"
' '''
"""


def long_path_form(program: Path) -> Path:
    """`program` as installers write a script whose interpreter path is too long for #!."""
    path = program.with_name("airflow-long")
    body = program.read_text().split("\n", 1)[1]
    path.write_text(SHELL_LINE.format(python=sys.executable) + body)
    path.chmod(0o755)
    return path


def test_a_script_behind_a_shell_line_runs_as_it_would_by_itself(
    zygote: Zygote, program: Path, tmp_path: Path
) -> None:
    long = long_path_form(program)
    by_itself = subprocess.run([str(long)], capture_output=True, text=True, check=True)
    assert json.loads(by_itself.stdout)["name"] == "__main__"
    assert usable(PlainLaunch([str(long)], {}, tmp_path))
    log = tmp_path / "long.log"
    with open(log, "ab") as output:
        child = zygote.fork([str(long)], {"PATH": "/usr/bin", "FAKE_EXIT": "4"}, tmp_path, output)
    assert child.wait(30) == 4
    assert said(log)["argv"] == [str(long)]


def test_only_python_programs_outside_bubblewrap_are_forked(program: Path, tmp_path: Path) -> None:
    assert usable(PlainLaunch([str(program)], {}, tmp_path))
    assert not usable(PlainLaunch([str(program)], {}, tmp_path, mode="bubblewrap"))
    shell = tmp_path / "tool"
    shell.write_text("#!/bin/sh\nexit 0\n")
    assert not usable(PlainLaunch([str(shell)], {}, tmp_path))
    assert not usable(PlainLaunch([str(tmp_path / "missing")], {}, tmp_path))


# --- the supervisor with a zygote ------------------------------------------------------------


@pytest.fixture
def supervised(tmp_path: Path, program: Path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "airflow").write_text(program.read_text())
    (venv / "bin" / "airflow").chmod(0o755)
    (tmp_path / "ws").mkdir()
    made = EnvironmentSupervisor(
        plan(tmp_path, venv=venv, schedulers=2, min_workers=1),
        api_port=1,
        environment_for=lambda _plan, c: {"PATH": "/usr/bin", "FAKE_SLEEP": "1",
                                          "MWAA_AIRFLOW_COMPONENT": c.mwaa_component},
        launcher=lambda _plan, argv, env: PlainLaunch([str(a) for a in argv], env, tmp_path),
        zygote_script=SOURCE,
    )  # fmt: skip
    made.start()
    yield made
    made.stop(grace=1.0)


def pids(supervisor: EnvironmentSupervisor) -> dict[str, int]:
    return {name: c["pid"] for name, c in supervisor.tick().components.items() if c["pid"]}


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_supervisor_forks_every_process_from_one_zygote_and_restarts_them(
    supervised: EnvironmentSupervisor,
) -> None:
    first = pids(supervised)
    assert set(first) == {"scheduler-1", "scheduler-2", "dag-processor", "triggerer",
                          "api-server", "worker-1"}  # fmt: skip
    recorded = pidfiles.live_groups(supervised.run_dir)
    zygote_pid = recorded.pop("zygote")
    assert recorded == first
    assert {parent_of(pid) for pid in first.values()} == {zygote_pid}
    health = supervised.tick()  # what `airdock env status` shows
    assert health.zygote == {"pid": zygote_pid, "starts": 1}
    assert all(c["forked"] for c in health.components.values()), health.components

    # A component that dies comes back, forked by the same zygote.
    processes.signal_group(first["scheduler-1"], signal.SIGKILL)
    wait_until(lambda: pids(supervised).get("scheduler-1") not in (None, first["scheduler-1"]),
               timeout=30, message="scheduler-1 to be restarted")  # fmt: skip
    assert parent_of(pids(supervised)["scheduler-1"]) == zygote_pid

    # A zygote that dies takes its processes along; all come back under a new zygote.
    os.kill(zygote_pid, signal.SIGKILL)
    wait_until(lambda: not set(pids(supervised).values()) & set(first.values())
               and len(pids(supervised)) == 6, timeout=60,
               message="every process to be restarted")  # fmt: skip
    second = pidfiles.live_groups(supervised.run_dir)["zygote"]
    assert second != zygote_pid
    assert supervised.tick().zygote == {"pid": second, "starts": 2}
    assert {parent_of(pid) for pid in pids(supervised).values()} == {second}
    for pid in first.values():
        assert not processes.is_running(pid)


def test_a_stopped_supervisor_leaves_no_process_and_no_zygote(
    supervised: EnvironmentSupervisor,
) -> None:
    running = pids(supervised)
    zygote_pid = pidfiles.live_groups(supervised.run_dir)["zygote"]
    supervised.stop(grace=1.0)
    time.sleep(0.2)
    for pid in [*running.values(), zygote_pid]:
        assert not processes.is_running(pid)
    assert pidfiles.live_groups(supervised.run_dir) == {}


def start_impostor(tmp_path: Path, source: str) -> Zygote:
    """A Zygote whose process runs `source` instead of the real zygote script."""
    script = tmp_path / "impostor.py"
    script.write_text(source)
    return Zygote.start(
        lambda argv: PlainLaunch(argv, {"PATH": "/usr/bin"}, tmp_path),
        Path(sys.executable),
        script,
        tmp_path / "impostor.log",
    )


FORGING_ZYGOTE = """
import json, os, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
sock.send(json.dumps({"ready": os.getpid()}).encode())
while True:
    message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
    if not message:
        break
    for fd in fds:
        os.close(fd)
    # Names a process it did not fork: its parent, the control plane itself.
    sock.send(json.dumps({"pid": os.getppid()}).encode())
"""


def test_a_pid_the_zygote_did_not_fork_is_never_taken_for_a_component(
    tmp_path: Path, program: Path
) -> None:
    # The zygote runs as the environment, like the user code beside it: whatever it says is
    # checked before the control plane would ever signal that pid's group.
    forging = start_impostor(tmp_path, FORGING_ZYGOTE)
    try:
        with pytest.raises(OSError, match="not a component it forked"):
            fork(forging, program, tmp_path / "x.log")
    finally:
        forging.stop()
    assert processes.is_running(os.getpid())


def test_sigterm_lets_the_components_decide_when_the_zygote_ends(
    zygote: Zygote, program: Path, tmp_path: Path
) -> None:
    sleeper = start_sleeper(zygote, program, tmp_path / "t.log")
    os.kill(zygote.process.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert zygote.process.poll() is None, "the zygote left before its component"
    assert processes.is_running(sleeper.pid)
    processes.signal_group(sleeper.pid, signal.SIGTERM)
    assert sleeper.wait(30) == -signal.SIGTERM  # still reported by the zygote
    assert zygote.process.wait(30) == 0


GARBLING_ZYGOTE = """
import json, os, socket, sys, time
sock = socket.socket(fileno=int(sys.argv[1]))
sock.send(json.dumps({"ready": os.getpid()}).encode())
message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
sock.send(b"{not the protocol")
time.sleep(600)
"""


def test_a_zygote_that_breaks_the_protocol_is_killed_and_not_trusted(
    tmp_path: Path, program: Path
) -> None:
    garbling = start_impostor(tmp_path, GARBLING_ZYGOTE)
    try:
        with pytest.raises(OSError):
            fork(garbling, program, tmp_path / "y.log")
        assert garbling.process.wait(10) == -signal.SIGKILL
        assert not garbling.alive()
    finally:
        garbling.stop()


SILENT_ZYGOTE = """
import json, os, socket, sys, time
sock = socket.socket(fileno=int(sys.argv[1]))
sock.send(json.dumps({"ready": os.getpid()}).encode())
time.sleep(600)
"""


def test_a_zygote_that_does_not_answer_is_killed(
    tmp_path: Path, program: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its answer, if it came later, would be taken for the next request's.
    monkeypatch.setattr(zygote_module, "REPLY_TIMEOUT", 1.0)
    silent = start_impostor(tmp_path, SILENT_ZYGOTE)
    try:
        with pytest.raises(OSError, match="did not answer"):
            fork(silent, program, tmp_path / "z.log")
        assert silent.process.wait(10) == -signal.SIGKILL
        assert not silent.alive()
    finally:
        silent.stop()
