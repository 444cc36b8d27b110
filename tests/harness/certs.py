"""Certificates made by the tests: a CA, and certificates it signs for servers, peers and clients.

Everything is ECDSA P-256 (as etcd's own test fixtures are), written as PEM files next to each other:
``<name>.pem`` and ``<name>.key``. A certificate names loopback (``127.0.0.1``, ``localhost``) unless told
otherwise, and is valid for both server and client use, so one file can serve a member's client port, its
peer port and its dialing side.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = ("127.0.0.1", "localhost")


@dataclass
class Pair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Pair:
    pair = Pair(path.with_suffix(".pem"), path.with_suffix(".key"))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pair


class CA:
    """A self-signed certificate authority in ``folder`` (``ca.pem``, ``ca.key``)."""

    def __init__(self, folder: Path, name: str = "ca") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pyetcd-test-{name}")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pair = _write(folder / name, self.key, self.cert)

    def issue(self, name: str, cn: str | None = None, hosts: tuple[str, ...] = LOOPBACK) -> Pair:
        """``<name>.pem``/``<name>.key`` with common name ``cn`` (default ``name``) for ``hosts``."""
        key = _key()
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return _write(self.folder / name, key, builder.sign(self.key, hashes.SHA256()))

    def crl(self, path: Path, revoked: list[Pair]) -> Path:
        """A PEM revocation list at ``path`` naming the certificates of ``revoked``."""
        now = datetime.datetime.now(datetime.UTC)
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - datetime.timedelta(minutes=1))
            .next_update(now + datetime.timedelta(days=1))
            # RFC 5280 makes the CRL number mandatory; webpki (rustls) refuses a list without one.
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        )
        for p in revoked:
            serial = x509.load_pem_x509_certificate(p.cert.read_bytes()).serial_number
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        path.write_bytes(b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path


@dataclass
class CertAuth:
    """A server set-up for ``--client-cert-auth`` with two client certificates: CN ``root`` and CN ``alice``."""

    ca: CA
    root: Pair
    alice: Pair
    flags: list[str]

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        """The harness's gRPC credentials (it checks readiness as root)."""
        ca, key, cert = self.ca.pair.cert.read_bytes(), self.root.key.read_bytes(), self.root.cert.read_bytes()
        return grpc.ssl_channel_credentials(ca, key, cert)


def cert_auth(folder: Path) -> CertAuth:
    """A CA under ``folder``, a server certificate and the flags that require client certificates signed by it."""
    ca = CA(folder)
    server = ca.issue("server")
    flags = [
        "--cert-file", str(server.cert), "--key-file", str(server.key),
        "--trusted-ca-file", str(ca.pair.cert), "--client-cert-auth",
    ]  # fmt: skip
    return CertAuth(ca, ca.issue("root-cert", cn="root"), ca.issue("alice-cert", cn="alice"), flags)
