"""The local certificate authority behind the environments' HTTPS addresses.

Made once per data dir (`<data dir>/web-ca/`): a CA key that never leaves the directory
and its certificate, `ca.pem`, which clients trust (`endpoints.json` names it as `ca_bundle`).
Like everything else in the data dir, both are the server account's alone (0600): the clients
that trust the CA run as that account.
Each environment's address gets a server certificate for its IP, issued on first use and kept
beside the CA; one whose CA changed or which nears its end is issued again.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from environments.plumbing.files import atomic_write

CA_FOLDER = "web-ca"
CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CA_YEARS = 10
SERVER_DAYS = 397  # the longest validity browsers accept for a server certificate
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class ServerCertificate:
    cert: Path  # the server certificate followed by the CA's (a full chain)
    key: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LocalAuthority:
    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / CA_FOLDER

    @property
    def bundle(self) -> Path:
        """The CA certificate clients trust."""
        return self.folder / CA_CERT

    def ensure(self) -> Path:
        """Create the CA unless it exists; returns the bundle's path."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        if self.bundle.exists() and (self.folder / CA_KEY).exists():
            return self.bundle
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Airdock"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Airdock local CA"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        atomic_write(self.folder / CA_KEY, _private_pem(key))
        atomic_write(self.bundle, cert.public_bytes(serialization.Encoding.PEM))
        return self.bundle

    def server_certificate(self, address: str) -> ServerCertificate:
        """The certificate of one environment's address (an IP), issued if need be."""
        self.ensure()
        found = ServerCertificate(
            self.folder / f"server-{address}.pem", self.folder / f"server-{address}-key.pem"
        )
        if not self._still_good(found):
            self._issue(address, found)
        return found

    def _ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.bundle.read_bytes())
        key = serialization.load_pem_private_key((self.folder / CA_KEY).read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def _still_good(self, found: ServerCertificate) -> bool:
        if not (found.cert.exists() and found.key.exists()):
            return False
        chain = x509.load_pem_x509_certificates(found.cert.read_bytes())
        ca, _ = self._ca()
        return (
            len(chain) == 2
            and chain[1] == ca
            and chain[0].not_valid_after_utc - RENEW_BEFORE > _now()
        )

    def _issue(self, address: str, target: ServerCertificate) -> None:
        ca_cert, ca_key = self._ca()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        atomic_write(target.key, _private_pem(key))
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM
        )
        atomic_write(target.cert, chain)
