"""Settings: flags, their help, AIRDOCK_* fallbacks and the README table all come from one
declaration, and a bad value is refused with a message rather than a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import cli
from controlplane.options import SettingsError, from_arguments, options
from controlplane.settings import CommonSettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def _serve(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    args = cli.build_parser().parse_args(["serve", *argv])
    return from_arguments(Settings, args, environ or {})


def _visible() -> list:
    return [opt for cls in (Settings, CommonSettings) for opt in options(cls) if not opt.hidden]


def test_defaults_when_nothing_is_given():
    assert _serve([]) == Settings()
    assert Settings().port == 8080 and Settings().auth_enabled and Settings().airflow_venvs


def test_a_variable_fills_in_and_a_flag_wins():
    environ = {
        "AIRDOCK_PORT": "9000",
        "AIRDOCK_REGION": "eu-west-1",
        "AIRDOCK_POLL_INTERVAL": "0.25",
        "AIRDOCK_IAM_CONFIG": "/etc/airdock/iam.yaml",
        "AIRDOCK_REAL_AWS": "true",
        "AIRDOCK_AIRFLOW_VENVS": "false",
        "AIRDOCK_UV_CACHE_DIR": "/cache",
    }
    settings = _serve(["--region", "us-west-2"], environ)
    assert settings.port == 9000 and settings.region == "us-west-2"
    assert settings.poll_interval == 0.25 and settings.iam_config == Path("/etc/airdock/iam.yaml")
    assert settings.real_aws and not settings.airflow_venvs
    assert settings.uv_cache_dir == Path("/cache")
    assert _serve(["--no-airflow", "--auth", "off"]).airflow_venvs is False
    assert Settings().airflow_zygote and _serve(["--no-airflow-zygote"]).airflow_zygote is False
    assert _serve([], {"AIRDOCK_AIRFLOW_ZYGOTE": "false"}).airflow_zygote is False
    assert _serve(["--auth", "off"]).auth_enabled is False


def test_authentication_cannot_be_switched_off_from_the_environment():
    assert _serve([], {"AIRDOCK_AUTH": "off", "AIRDOCK_AUTH_ENABLED": "false"}).auth_enabled


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("AIRDOCK_PORT", "http", "not a whole number"),
        ("AIRDOCK_PORT", "70000", "not a port number"),
        ("AIRDOCK_RECONCILER_WORKERS", "0", "less than 1"),
        ("AIRDOCK_POLL_INTERVAL", "-1", "positive number of seconds"),
        ("AIRDOCK_ACCOUNT_ID", "1234", "12-digit"),
        ("AIRDOCK_REGION", "Mars", "AWS region"),
        ("AIRDOCK_AWS_ENDPOINT", "localhost:4566", "http:// or https://"),
        ("AIRDOCK_DATABASE_URL", "not a url", "SQLAlchemy database URL"),
        ("AIRDOCK_REAL_AWS", "maybe", "neither true nor false"),
    ],
)
def test_a_bad_variable_is_named(variable, value, said):
    with pytest.raises(SettingsError, match=rf"^{variable} \(for --[a-z-]+\): .*{said}"):
        _serve([], {variable: value})


def test_bad_flags_are_refused_with_their_choices(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--log-level", "foo", "serve"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--log-level: 'foo' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit):
        cli.main(["serve", "--port", "eighty"])
    assert "--port: 'eighty' is not a whole number" in capsys.readouterr().err


def test_the_command_refuses_a_bad_variable_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "serve", "--data-dir", str(tmp_path)],
        env={"PATH": "", "AIRDOCK_MAX_ENVIRONMENTS": "lots"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "airdock serve: AIRDOCK_MAX_ENVIRONMENTS (for --max-environments): "
        "'lots' is not a whole number"
    )
    assert not (tmp_path / "admin.json").exists()  # refused before anything started


def test_endpoint_and_real_aws_exclude_each_other():
    with pytest.raises(SettingsError, match="exclude each other"):
        _serve(["--aws-endpoint", "http://127.0.0.1:4566"], {"AIRDOCK_REAL_AWS": "1"})


def test_every_flag_shows_its_default_and_variable(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    serve_help = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top_help = " ".join(capsys.readouterr().out.split())
    for opt in _visible():
        shown = " ".join(opt.helptext().split())
        assert f"(default: {opt.shown}; env {opt.env}" in shown
        assert shown in (top_help if opt.field == "log_level" else serve_help)
    assert "--auth" not in serve_help


def test_the_readme_table_matches_the_declarations():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip().replace("`", "") for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    for opt in _visible():
        env = opt.env + ("" if opt.switch is None else "=true" if opt.switch else "=false")
        # The whole flag: --no-airflow is not --no-airflow-zygote.
        matching = [row for row in rows if re.search(rf"{re.escape(opt.flag)}(?![\w-])", row[0])]
        assert len(matching) == 1, f"README has no single row for {opt.flag}"
        assert matching[0][1:3] == [env, opt.shown], opt.flag
    assert len(rows) == len(_visible())


def test_no_settings_exist_at_import_time():
    import controlplane.runtime
    import controlplane.serve
    import controlplane.settings

    for module in (cli, controlplane.settings, controlplane.serve, controlplane.runtime):
        assert not [v for v in vars(module).values() if isinstance(v, Settings | CommonSettings)]
