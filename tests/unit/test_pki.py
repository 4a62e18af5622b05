"""eucacore.pki: the cloud CA and the certificates it issues, checked with cryptography."""

import ipaddress
import re
import stat

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from eucacore import pki


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    keys_dir = tmp_path_factory.mktemp("keys")
    pki.create_ca(keys_dir)
    pki.issue(keys_dir, "node", "node-1", ["10.1.2.3", "nc1.example.com"])
    return keys_dir


def test_create_ca_is_idempotent(tmp_path):
    first = pki.create_ca(tmp_path / "keys")
    pem, key_pem = first.cert.read_bytes(), first.key.read_bytes()
    second = pki.create_ca(tmp_path / "keys")
    assert second == first
    assert second.cert.read_bytes() == pem
    assert second.key.read_bytes() == key_pem
    ca = load(first.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.issuer == ca.subject


def test_issued_cert_is_signed_by_the_ca(keys):
    ca = load(keys / pki.CA_CERT)
    cert = load(keys / "node-cert.pem")
    cert.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    assert cert.issuer == ca.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_issued_cert_is_not_signed_by_another_ca(keys, tmp_path):
    other = load(pki.create_ca(tmp_path / "other").cert)
    cert = load(keys / "node-cert.pem")
    # Both CAs have the same subject name, so only the signature tells them apart.
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(other)


def test_ou_is_the_kind_and_cn_the_name(keys):
    subject = load(keys / "node-cert.pem").subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["node"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["node-1"]


def test_san_has_given_hosts_and_loopback(keys):
    san = load(keys / "node-cert.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = san.get_values_for_type(x509.IPAddress)
    dns = san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.1.2.3") in ips
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert "nc1.example.com" in dns
    assert "localhost" in dns


def test_private_keys_are_mode_0600(keys):
    for name in (pki.CA_KEY, "node-pk.pem"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600, name


def test_component_keys_layout(keys):
    pair = pki.component_keys(keys, "node")
    assert pair.cert == keys / "node-cert.pem"
    assert pair.key == keys / "node-pk.pem"
    assert pair.ca == keys / pki.CA_CERT
    assert pair.exists()
    assert not pki.component_keys(keys, "walrus").exists()


def test_unknown_kind_is_refused(keys):
    with pytest.raises(ValueError, match="unknown component kind"):
        pki.issue(keys, "hacker", "x", ["127.0.0.1"])
    assert not (keys / "hacker-cert.pem").exists()


def test_reissue_replaces_the_cert(tmp_path):
    pki.create_ca(tmp_path)
    first = pki.issue(tmp_path, "sc", "sc-a", ["127.0.0.1"]).cert.read_bytes()
    second = pki.issue(tmp_path, "sc", "sc-a", ["127.0.0.1"]).cert.read_bytes()
    assert first != second
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_fingerprint_format(keys):
    fp = pki.fingerprint(keys / pki.CA_CERT)
    assert re.fullmatch(r"([0-9a-f]{2}:){31}[0-9a-f]{2}", fp)
    from cryptography.hazmat.primitives import hashes
    assert fp.replace(":", "") == load(keys / pki.CA_CERT).fingerprint(hashes.SHA256()).hex()
    assert fp != pki.fingerprint(keys / "node-cert.pem")
