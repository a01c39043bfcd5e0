"""The doors' pieces that need no Airflow: the local CA and its server certificates, the
addresses environments get, the CLI allow-list, and single-use web tokens."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading

import pytest
from cryptography import x509

from controlplane.doors.certificates import LocalAuthority
from environments.airflow.runtime.cli import CommandRefused, parse
from environments.naming import Placement, webserver_address


def test_a_server_certificate_chains_to_the_local_ca_for_its_address(tmp_path):
    authority = LocalAuthority(tmp_path)
    bundle = authority.ensure()
    issued = authority.server_certificate("127.9.8.7")
    leaf, ca = x509.load_pem_x509_certificates(issued.cert.read_bytes())
    assert ca == x509.load_pem_x509_certificate(bundle.read_bytes())
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.9.8.7")]
    assert oct(issued.key.stat().st_mode & 0o777) == "0o600"
    # Kept across calls; issued again once the CA it chains to is replaced.
    assert authority.server_certificate("127.9.8.7").cert.read_bytes() == issued.cert.read_bytes()
    (tmp_path / "web-ca" / "ca.pem").unlink()
    authority.ensure()
    again = x509.load_pem_x509_certificates(
        authority.server_certificate("127.9.8.7").cert.read_bytes()
    )
    assert again[0] != leaf


def test_a_tls_client_trusting_the_bundle_accepts_the_address_and_no_other_name(tmp_path):
    authority = LocalAuthority(tmp_path)
    issued = authority.server_certificate("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(issued.cert, issued.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                server.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(authority.bundle))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.wrap_socket(raw, server_hostname="localhost")
    thread.join(5)
    listener.close()


def test_every_environment_gets_a_loopback_address_outside_127_0():
    seen = set()
    for number in range(2000):
        address = ipaddress.ip_address(webserver_address(f"{number:032x}"))
        assert address in ipaddress.ip_network("127.0.0.0/8")
        assert address not in ipaddress.ip_network("127.0.0.0/16")
        assert not str(address).endswith((".0", ".255"))
        seen.add(address)
    assert len(seen) > 1990  # spread, not clustered
    place = Placement(account_id="123456789012", region="us-east-1", webserver_port=8443)
    assert place.webserver_hostname("abc") == f"{webserver_address('abc')}:8443"
    standard = Placement(account_id="123456789012", region="us-east-1")
    assert standard.webserver_hostname("abc") == webserver_address("abc")


@pytest.mark.parametrize("version", ["3.0.6", "2.10.3"])
def test_the_cli_allow_list(version):
    assert parse("dags trigger my_dag --conf '{\"a\": 1}'", version) == [
        "dags",
        "trigger",
        "my_dag",
        "--conf",
        '{"a": 1}',
    ]
    assert parse("version", version) == ["version"]
    assert parse("airflow variables get x", version) == ["variables", "get", "x"]
    for refused in ("db reset -y", "users create", "config get-value core x", "", "webserver",
                    "dags", "variables export /tmp/x", "'unclosed"):  # fmt: skip
        with pytest.raises(CommandRefused):
            parse(refused, version)
    backfill = ["backfill", "create"] if version.startswith("3.") else ["dags", "backfill"]
    assert parse(" ".join([*backfill, "d"]), version)[:2] == backfill


def test_web_tokens_work_once_cli_tokens_until_they_expire(tmp_path):
    import hashlib
    import time

    from environments.service import EnvironmentService
    from environments.store import Store, TokenRow, add_token

    db = Store(f"sqlite:///{tmp_path / 'store.db'}")
    db.create_schema()
    service = EnvironmentService(db, Placement(account_id="123456789012", region="us-east-1"))

    def plant(token: str, kind: str, expires_in: float = 60.0) -> None:
        with db.transaction() as session:
            add_token(
                session,
                TokenRow(
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    kind=kind,
                    env_name="env-a",
                    identity="arn:aws:iam::123456789012:user/alice",
                    airflow_role="Viewer" if kind == "web" else None,
                    expires_at=time.time() + expires_in,
                ),
            )

    plant("web-1", "web")
    plant("cli-1", "cli")
    plant("old", "web", expires_in=-1)
    plant("elsewhere", "web")
    granted = service.redeem_token("web-1", "web", "env-a", single_use=True)
    assert granted is not None and granted.airflow_role == "Viewer"
    assert service.redeem_token("web-1", "web", "env-a", single_use=True) is None  # used up
    assert service.redeem_token("old", "web", "env-a", single_use=True) is None  # expired
    assert service.redeem_token("nonsense", "web", "env-a", single_use=True) is None
    assert service.redeem_token("elsewhere", "web", "env-b", single_use=True) is None
    assert service.redeem_token("cli-1", "web", "env-a", single_use=True) is None  # wrong kind
    for _ in range(2):
        assert service.redeem_token("web-1", "cli", "env-a", single_use=False) is None
    plant("cli-2", "cli")
    for _ in range(2):
        assert service.redeem_token("cli-2", "cli", "env-a", single_use=False) is not None
    db.dispose()
