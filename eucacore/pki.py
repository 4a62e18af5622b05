"""The cloud's certificate authority and the component certificates it issues.

Layout of the keys directory (``$EUCALYPTUS/var/lib/eucalyptus/keys``), after the
original's: ``cloud-cert.pem``/``cloud-pk.pem`` are the CA; each component kind has
``<kind>-cert.pem``/``<kind>-pk.pem`` (kinds: clc, walrus, sc, cluster, node).
The kind is the certificate's OU, which endpoints use to decide who may call them.
"""

import ipaddress
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KINDS = ("clc", "walrus", "sc", "cluster", "node")
CA_CERT = "cloud-cert.pem"
CA_KEY = "cloud-pk.pem"
_VALIDITY = timedelta(days=3650)


@dataclass(frozen=True)
class KeyPair:
    """Paths of one party's certificate and private key, and of the CA that vouches for it."""

    cert: Path
    key: Path
    ca: Path

    def exists(self) -> bool:
        return self.cert.exists() and self.key.exists() and self.ca.exists()


def component_keys(keys_dir: str | Path, kind: str) -> KeyPair:
    """The key pair a component of ``kind`` uses (issued at registration)."""
    keys_dir = Path(keys_dir)
    return KeyPair(keys_dir / f"{kind}-cert.pem", keys_dir / f"{kind}-pk.pem", keys_dir / CA_CERT)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    _write_atomic(path, data, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create_ca(keys_dir: str | Path, name: str = "eucalyptus") -> KeyPair:
    """Create the cloud CA in ``keys_dir`` unless it exists; returns its key pair."""
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = KeyPair(keys_dir / CA_CERT, keys_dir / CA_KEY, keys_dir / CA_CERT)
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Eucalyptus"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{name} cloud CA")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(pair.key, key)
    _write_atomic(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts + ["localhost", "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(keys_dir: str | Path, kind: str, name: str, hosts: list[str]) -> KeyPair:
    """Issue ``kind``'s certificate, signed by the cloud CA, valid for ``hosts``.

    As in the original, all components of one kind share one key pair (every NC has
    ``node-pk.pem``), so the caller passes every registered host of the kind: the
    certificate names them all. An existing private key is kept, so copies already
    on other hosts stay a matching pair. The OU is ``kind``, the CN ``name``; files
    are replaced atomically.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}")
    keys_dir = Path(keys_dir)
    ca_cert = x509.load_pem_x509_certificate((keys_dir / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((keys_dir / CA_KEY).read_bytes(), password=None)
    pair = component_keys(keys_dir, kind)
    if pair.key.exists():
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    else:
        key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Eucalyptus"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    if not pair.key.exists():
        _write_private(pair.key, key)
    _write_atomic(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
    return pair


def fingerprint(cert_path: str | Path) -> str:
    """SHA-256 fingerprint of a PEM certificate, colon-separated hex."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":")
