"""SIGKILL `airdock serve` mid-flight; a restart on the same data dir resumes everything."""

from __future__ import annotations

import signal

from tests.conftest import make_prerequisites, start_server, wait_for_status, wait_gone


def test_sigkill_and_restart_loses_nothing(tmp_path):
    data_dir = tmp_path / "data"
    live = start_server(data_dir)
    try:
        client = live.mwaa()
        params = make_prerequisites(live)
        names = [f"crash-{i}" for i in range(6)]
        for name in names:
            client.create_environment(Name=name, **params)
        wait_for_status(client, names[0], {"AVAILABLE"})
        client.update_environment(Name=names[0], MaxWorkers=3)
        live.stop(signal.SIGKILL)

        live = start_server(data_dir)
        client = live.mwaa()
        for name in names:
            wait_for_status(client, name, {"AVAILABLE"})
        assert client.get_environment(Name=names[0])["Environment"]["MaxWorkers"] == 3
        for name in names[:3]:
            client.delete_environment(Name=name)
        live.stop(signal.SIGKILL)

        live = start_server(data_dir)
        client = live.mwaa()
        for name in names[:3]:
            wait_gone(client, name)
        assert sorted(client.list_environments()["Environments"]) == names[3:]
    finally:
        live.stop()
